{{ config(materialized='table', schema='marts') }}
-- One row per artist (normalised name), with the name as most often written, the identifiers
-- the sources gave, and where they come from once enrichment knows it.
with plays as (
    select * from {{ ref('int_plays') }}
),

names as (
    select artist_key, artist_name, count(*) as n
    from plays
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
    from plays
    group by artist_key
)

select
    {{ generate_surrogate_key(['ids.artist_key']) }} as artist_id,
    ids.artist_key,
    (select first(n.artist_name order by n.n desc, n.artist_name) from names as n where n.artist_key = ids.artist_key) as artist_name,
    ids.spotify_artist_uri,
    ids.musicbrainz_id,
    cast(null as varchar) as country_code,
    cast(null as varchar) as location_id,
    ids.play_count,
    ids.ms_played,
    ids.first_played_at,
    ids.last_played_at
from ids
