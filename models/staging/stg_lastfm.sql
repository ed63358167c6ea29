{{ config(materialized='view', schema='staging') }}
-- Last.fm scrobbles: the start of the play and names (with MusicBrainz ids); no duration, so
-- the end time is estimated later from what other sources know of the track.
select
    event_id,
    listener_id,
    source_kind,
    content_kind,
    started_at,
    track_name,
    artist_name,
    album_name,
    artist_mbid,
    identity_key,
    duplicate_of
from {{ source('raw', 'listen_events') }}
where source_kind = 'lastfm'
