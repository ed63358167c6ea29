{{ config(materialized='table', schema='marts') }}
-- Which artist has which genre; empty until enrichment lands.
select
    cast(null as varchar) as artist_id,
    cast(null as varchar) as genre_id
where false
