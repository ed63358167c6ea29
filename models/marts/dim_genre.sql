{{ config(materialized='table', schema='marts') }}
-- Genres, filled once enrichment lands (MusicBrainz/Spotify); empty but valid until then.
select
    cast(null as varchar) as genre_id,
    cast(null as varchar) as genre_name,
    cast(null as varchar) as genre_family
where false
