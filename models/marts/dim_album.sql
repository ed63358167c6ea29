{{ config(materialized='table', schema='marts') }}
-- One row per album (artist and normalised album name); plays with no album name known from
-- any source share one "unknown album" per artist. Totals over the plays no listener hid
-- (int_hidden_plays): an album whose every play is hidden has no row.
with plays as (
    select * from {{ ref('int_plays') }} as p
    where not exists (select 1 from {{ ref('int_hidden_plays') }} as h where h.event_id = p.event_id)
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
