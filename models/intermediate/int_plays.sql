{{ config(materialized='table', schema='intermediate') }}
-- The plays that count (PRODUCT §2.2): one per listen (duplicates from other sources were
-- marked at import), music only, at least var('min_play_ms'), private sessions excluded unless
-- var('include_incognito'). Each gets its track, artist and album identity and local time.
with events as (
    select *
    from {{ ref('int_listen_events') }}
    where duplicate_of is null
      and content_kind = 'track'
      and ms_played >= {{ var('min_play_ms') }}
      {% if not var('include_incognito') %}and not incognito_mode{% endif %}
),

-- The Spotify URI and album an identity is most often seen with, so that plays from sources
-- without them (basic export, Last.fm) join the same track and album. Plain aggregates (not
-- window functions) so DuckDB can spill them to disk within a small memory limit.
uri_counts as (
    select identity_key, spotify_track_uri, count(*) as n
    from {{ ref('int_listen_events') }}
    where content_kind = 'track' and spotify_track_uri is not null
    group by identity_key, spotify_track_uri
),

album_counts as (
    select identity_key, album_name, count(*) as n
    from {{ ref('int_listen_events') }}
    where content_kind = 'track' and album_name is not null
    group by identity_key, album_name
),

known as (
    select
        coalesce(u.identity_key, a.identity_key) as identity_key,
        u.spotify_track_uri,
        a.album_name
    from (
        select identity_key, first(spotify_track_uri order by n desc, spotify_track_uri) as spotify_track_uri
        from uri_counts group by identity_key
    ) as u
    full outer join (
        select identity_key, first(album_name order by n desc, album_name) as album_name
        from album_counts group by identity_key
    ) as a using (identity_key)
),

keyed as (
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
        e.identity_key,
        coalesce(k.spotify_track_uri, e.identity_key) as track_key,
        split_part(e.identity_key, '|', 1) as artist_key,
        split_part(e.identity_key, '|', 1) || '|' || coalesce({{ normalise_name('coalesce(e.album_name, k.album_name)') }}, '') as album_key,
        k.spotify_track_uri
    from events as e
    left join known as k using (identity_key)
),

-- Local time: the ASOF join runs on (event_id, ended_at) only, so it sorts two narrow columns
-- rather than whole rows; the result joins back by key.
local_times as (
    select
        k.event_id,
        k.ended_at + to_seconds(coalesce(o.utc_offset_seconds, 0)) as ended_at_local
    from (select event_id, ended_at from keyed) as k
    asof left join {{ source('raw', 'tz_offsets') }} as o
        on k.ended_at >= o.valid_from
)

select
    keyed.*,
    local_times.ended_at_local
from keyed
join local_times using (event_id)
