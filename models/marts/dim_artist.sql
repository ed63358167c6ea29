{{ config(materialized='table', schema='marts') }}
-- One row per artist (normalised name), with the name as most often written, the identifiers
-- the sources and enrichment gave, and where the artist comes from (country, areas) once
-- enrichment knows it.
-- int_plays is read where needed, not through a CTE: DuckDB materialises a CTE read twice,
-- a copy of every play.
with names as (
    select artist_key, artist_name, count(*) as n
    from {{ ref('int_plays') }}
    group by artist_key, artist_name
),

ids as (
    select
        artist_key,
        min(spotify_artist_uri) as spotify_artist_uri,
        min(artist_mbid) as musicbrainz_id,
        count(*) as play_count,
        sum(ms_played) as ms_played,
        min(ended_at) as first_played_at,
        max(ended_at) as last_played_at
    from {{ ref('int_plays') }}
    group by artist_key
)

select
    {{ generate_surrogate_key(['ids.artist_key']) }} as artist_id,
    ids.artist_key,
    (select first(n.artist_name order by n.n desc, n.artist_name) from names as n where n.artist_key = ids.artist_key) as artist_name,
    coalesce(ids.spotify_artist_uri, 'spotify:artist:' || e.spotify_artist_id) as spotify_artist_uri,
    coalesce(ids.musicbrainz_id, e.musicbrainz_id) as musicbrainz_id,
    e.artist_type,
    e.area_name,
    e.begin_area_name,
    e.active_from,
    e.active_to,
    e.image_url,
    l.country_code,
    l.location_id,
    ids.play_count,
    ids.ms_played,
    ids.first_played_at,
    ids.last_played_at
from ids
left join {{ ref('int_artist_enrichment') }} as e using (artist_key)
left join {{ ref('dim_location') }} as l on l.country_code = e.country_code
