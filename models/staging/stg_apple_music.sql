{{ config(materialized='view', schema='staging') }}
-- Apple Music's Play Activity (Apple's privacy export): end time and the time played, names
-- only (no identifiers magpie can use; never the client's IP address, which is not imported).
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
    cast(null as varchar) as spotify_track_uri,
    cast(null as varchar) as spotify_artist_uri,
    platform,
    conn_country,
    reason_start,
    reason_end,
    cast(null as boolean) as shuffle,
    skipped,
    false as incognito_mode,
    cast(null as varchar) as artist_mbid,
    identity_key,
    duplicate_of
from {{ source('raw', 'listen_events') }}
where source_kind = 'apple_music'
