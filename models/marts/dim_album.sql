{{ config(materialized='table', schema='marts') }}
-- One row per album (artist and normalised album name); plays with no album name known from
-- any source share one "unknown album" per artist.
with plays as (
    select * from {{ ref('int_plays') }}
)

select
    {{ generate_surrogate_key(['album_key']) }} as album_id,
    album_key,
    coalesce(min(album_name), '(unknown album)') as album_name,
    {{ generate_surrogate_key(['artist_key']) }} as artist_id,
    count(*) as play_count,
    sum(ms_played) as ms_played,
    min(ended_at) as first_played_at,
    max(ended_at) as last_played_at
from plays
group by album_key, artist_key
