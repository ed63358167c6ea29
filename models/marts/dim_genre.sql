{{ config(materialized='table', schema='marts') }}
-- Genres that enrichment found for the listener's artists, each with its family (from the
-- genre_families seed) and how many artists carry it.
with genres as (
    select genre_name, count(distinct artist_key) as artist_count
    from {{ ref('int_artist_genres') }}
    group by genre_name
),

families as (
    select g.genre_name, first(f.genre_family order by f.rank, f.keyword) as genre_family
    from genres as g
    join {{ ref('genre_families') }} as f on contains(g.genre_name, f.keyword)
    group by g.genre_name
)

select
    {{ generate_surrogate_key(['g.genre_name']) }} as genre_id,
    g.genre_name,
    coalesce(f.genre_family, 'other') as genre_family,
    g.artist_count
from genres as g
left join families as f using (genre_name)
