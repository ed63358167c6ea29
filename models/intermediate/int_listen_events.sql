{{ config(materialized='view', schema='intermediate') }}
-- Every source in one shape. Sources that give only the start of a play (Last.fm, submitted
-- listens, ListenBrainz and Maloja exports) get an end time and a duration: the time listened
-- when the source gives it, else the track's length as the listen carries it or as other
-- sources know it, else var('assumed_play_ms').
with timed as (
    select * from {{ ref('stg_spotify_extended') }}
    union all by name
    select * from {{ ref('stg_spotify_basic') }}
    union all by name
    select * from {{ ref('stg_spotify_api') }}
    union all by name
    select * from {{ ref('stg_apple_music') }}
),

lastfm as (
    select
        l.event_id,
        l.listener_id,
        l.source_kind,
        l.content_kind,
        l.started_at + to_milliseconds(coalesce(t.typical_ms, {{ var('assumed_play_ms') }})) as ended_at,
        coalesce(t.typical_ms, {{ var('assumed_play_ms') }}) as ms_played,
        true as ms_played_estimated,
        l.track_name,
        l.artist_name,
        l.album_name,
        l.artist_mbid,
        false as incognito_mode,
        l.identity_key,
        l.duplicate_of
    from {{ ref('stg_lastfm') }} as l
    left join {{ ref('int_track_lengths') }} as t using (identity_key)
),

scrobbles as (
    select
        s.event_id,
        s.listener_id,
        s.source_kind,
        s.content_kind,
        s.started_at + to_milliseconds(
            coalesce(s.ms_played, s.track_duration_ms, t.typical_ms, {{ var('assumed_play_ms') }})
        ) as ended_at,
        coalesce(s.ms_played, s.track_duration_ms, t.typical_ms, {{ var('assumed_play_ms') }}) as ms_played,
        s.ms_played is null as ms_played_estimated,
        s.track_name,
        s.artist_name,
        s.album_name,
        s.spotify_track_uri,
        s.platform,
        s.artist_mbid,
        false as incognito_mode,
        s.identity_key,
        s.duplicate_of
    from {{ ref('stg_scrobbles') }} as s
    left join {{ ref('int_track_lengths') }} as t using (identity_key)
)

select * from timed
union all by name
select * from lastfm
union all by name
select * from scrobbles
