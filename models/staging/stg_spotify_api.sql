{{ config(materialized='view', schema='staging') }}
-- Spotify Web API recently-played: exact end time and URIs; the time listened is not given,
-- only the track's length, so it is estimated as the whole track.
select
    event_id,
    listener_id,
    source_kind,
    content_kind,
    ended_at,
    track_duration_ms as ms_played,
    true as ms_played_estimated,
    track_name,
    artist_name,
    album_name,
    spotify_track_uri,
    spotify_artist_uri,
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
where source_kind = 'spotify_api'
