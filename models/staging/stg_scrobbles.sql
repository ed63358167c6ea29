{{ config(materialized='view', schema='staging') }}
-- Listens that players submitted (the ListenBrainz and Last.fm APIs) or that came from a
-- ListenBrainz or Maloja export: like Last.fm's, they say when the play started, not when it
-- ended. Some carry the track's length (and Maloja sometimes the time listened);
-- int_listen_events estimates the end from those, or from what other sources know.
select
    event_id,
    listener_id,
    source_kind,
    content_kind,
    started_at,
    ms_played,
    track_duration_ms,
    track_name,
    artist_name,
    album_name,
    spotify_track_uri,
    platform,
    artist_mbid,
    identity_key,
    duplicate_of
from {{ source('raw', 'listen_events') }}
where source_kind in ('listenbrainz_api', 'lastfm_api', 'listenbrainz', 'maloja')
