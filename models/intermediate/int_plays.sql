{{ config(materialized='table', schema='intermediate') }}
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
with events as (
    select
        *,
        split_part(identity_key, '|', 1) as artist_key,
        {{ normalise_name('album_name') }} as album_name_normalised
    from {{ ref('int_listen_events') }}
    where duplicate_of is null
      and content_kind = 'track'
      and ms_played >= {{ var('min_play_ms') }}
      {% if not var('include_incognito') %}and not incognito_mode{% endif %}
)

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
    ) as album_key
from events as e
left join {{ ref('int_track_identities') }} as k using (identity_key)
