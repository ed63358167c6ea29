{{ config(materialized='table', schema='intermediate') }}
-- The plays that count (PRODUCT §2.2): one per listen (duplicates from other sources were
-- marked at import), music only, at least var('min_play_ms'), private sessions excluded unless
-- var('include_incognito'). Each gets its track, artist and album identity (from
-- int_track_identities: track_key is the Spotify URI whenever one is known) and local time.
with events as (
    select *
    from {{ ref('int_listen_events') }}
    where duplicate_of is null
      and content_kind = 'track'
      and ms_played >= {{ var('min_play_ms') }}
      {% if not var('include_incognito') %}and not incognito_mode{% endif %}
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
        coalesce(k.spotify_track_uri, e.identity_key) as track_key,
        split_part(e.identity_key, '|', 1) as artist_key,
        split_part(e.identity_key, '|', 1) || '|' || coalesce({{ normalise_name('coalesce(e.album_name, k.album_name)') }}, '') as album_key
    from events as e
    left join {{ ref('int_track_identities') }} as k using (identity_key)
),

-- Local time: the zone's offsets as periods [valid_from, valid_to), listed under every year
-- they touch, so each play finds its period by an equi-join on its year (a hash join, which
-- spills within a small memory limit, where an ASOF join over millions of wide rows does not).
periods as (
    select
        valid_from,
        coalesce(lead(valid_from) over (order by valid_from), timestamp '2200-01-01') as valid_to,
        utc_offset_seconds
    from {{ source('raw', 'tz_offsets') }}
),

period_years as (
    select *, unnest(range(year(valid_from), year(valid_to) + 1)) as year
    from periods
)

select
    keyed.*,
    keyed.ended_at + to_seconds(coalesce(p.utc_offset_seconds, 0)) as ended_at_local
from keyed
left join period_years as p
    on p.year = year(keyed.ended_at)
    and keyed.ended_at >= p.valid_from
    and keyed.ended_at < p.valid_to
