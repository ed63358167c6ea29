{{ config(materialized='view', schema='staging') }}
-- Spotify extended streaming history (Streaming_History_*, endsong_*): end time, duration,
-- URIs and the listening context are all given.
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
    album_name,
    spotify_track_uri,
    cast(null as varchar) as spotify_artist_uri,
    platform,
    conn_country,
    reason_start,
    reason_end,
    shuffle,
    skipped,
    coalesce(incognito_mode, false) as incognito_mode,
    cast(null as varchar) as artist_mbid,
    identity_key,
    duplicate_of
from {{ source('raw', 'listen_events') }}
where source_kind = 'spotify_extended'
