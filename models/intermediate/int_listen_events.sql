{{ config(materialized='view', schema='intermediate') }}
-- Every source in one shape. Last.fm scrobbles get an end time and a duration estimated from
-- the track's known length (or var('assumed_play_ms') when no source knows it).
with spotify as (
    select * from {{ ref('stg_spotify_extended') }}
    union all by name
    select * from {{ ref('stg_spotify_basic') }}
    union all by name
    select * from {{ ref('stg_spotify_api') }}
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
)

select * from spotify
union all by name
select * from lastfm
