{{ config(materialized='view', schema='staging') }}
-- Spotify basic streaming history: minute-precision end time, names and duration only.
select
    event_id,
    listener_id,
    source_kind,
    content_kind,
    ended_at,
    ms_played,
    false as ms_played_estimated,
    track_name,
    artist_name,
    cast(null as varchar) as album_name,
    cast(null as varchar) as spotify_track_uri,
    cast(null as varchar) as spotify_artist_uri,
    cast(null as varchar) as platform,
    cast(null as varchar) as conn_country,
    cast(null as varchar) as reason_start,
    cast(null as varchar) as reason_end,
    cast(null as boolean) as shuffle,
    cast(null as boolean) as skipped,
    false as incognito_mode,
    cast(null as varchar) as artist_mbid,
    identity_key,
    duplicate_of
from {{ source('raw', 'listen_events') }}
where source_kind = 'spotify_basic'
