{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert', schema='intermediate') }}
-- The plays that count (PRODUCT §2.2): one per listen (duplicates from other sources were
-- marked at import), music only, at least var('min_play_ms'), private sessions excluded unless
-- var('include_incognito'). Each gets its track, artist and album identity (from
-- int_track_identities: track_key is the Spotify URI whenever one is known). Local time is
-- added in fact_plays: beside this model's join a second one (and its hash table) made DuckDB
-- spill ~45 MB more at 350k plays, and run out of memory on two threads at 10M.
-- The artist key and the play's normalised album name are computed here, before the join: a
-- column read from the table arrives dictionary-encoded, so DuckDB normalises each distinct
-- name once; after the join it would normalise every play's (int_plays: ~330 -> ~310 ms at
-- 350k plays, 9 runs each).
-- Incremental: a build reads the events added since the last (event ids come from a sequence)
-- and again the plays of every track identity those events touch, since a new event can give
-- an identity its Spotify URI or album, or a Last.fm play its length (of those, it writes the
-- ones that changed); counted plays are never
-- removed (a later duplicate is marked at import, the first stays), so delete+insert on
-- event_id ends equal to a full refresh. Events above var('event_watermark') wait for the next
-- build (magpie passes the highest id all of whose predecessors are committed). invocation_id
-- marks the rows this build wrote, for int_sessions and fact_plays.
{% set upto = var('event_watermark', none) %}
with
{% if is_incremental() %}
seen as (
    select coalesce(max(event_id), -1) as event_id from {{ this }}
),

touched as (
    select distinct identity_key
    from {{ ref('int_listen_events') }}
    where event_id > (select event_id from seen)
      {% if upto is not none %}and event_id <= {{ upto }}{% endif %}
),
{% endif %}

events as (
    select
        *,
        split_part(identity_key, '|', 1) as artist_key,
        {{ normalise_name('album_name') }} as album_name_normalised
    from {{ ref('int_listen_events') }}
    where duplicate_of is null
      and content_kind = 'track'
      and ms_played >= {{ var('min_play_ms') }}
      {% if not var('include_incognito') %}and not incognito_mode{% endif %}
      {% if upto is not none %}and event_id <= {{ upto }}{% endif %}
      {% if is_incremental() %}
      and (event_id > (select event_id from seen) or identity_key in (select identity_key from touched))
      {% endif %}
),

plays as (
select
    e.event_id,
    e.listener_id,
    e.source_kind,
    e.ended_at,
    e.ms_played,
    e.ms_played_estimated,
    e.track_name,
    e.artist_name,
    coalesce(e.album_name, k.album_name) as album_name,
    e.spotify_artist_uri,
    e.artist_mbid,
    e.platform,
    e.conn_country,
    e.reason_start,
    e.reason_end,
    e.shuffle,
    e.skipped,
    coalesce(k.spotify_track_uri, e.identity_key) as track_key,
    e.artist_key,
    e.artist_key || '|' || coalesce(
        case when e.album_name is null then {{ normalise_name('k.album_name') }} else e.album_name_normalised end,
        ''
    ) as album_key,
    '{{ invocation_id }}' as invocation_id
from events as e
left join {{ ref('int_track_identities') }} as k using (identity_key)
)

{% if is_incremental() %}
-- Of the touched identities' plays, only those whose track, album or length came out other
-- than before are written again (most keep theirs: a known track played once more).
select p.*
from plays as p
left join {{ this }} as t using (event_id)
where t.event_id is null
   or t.track_key is distinct from p.track_key
   or t.album_name is distinct from p.album_name
   or t.album_key is distinct from p.album_key
   or t.ms_played is distinct from p.ms_played
   or t.ended_at is distinct from p.ended_at
{% else %}
select * from plays
{% endif %}
