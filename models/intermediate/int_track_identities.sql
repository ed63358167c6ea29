{{ config(materialized='incremental', unique_key='identity_key', incremental_strategy='delete+insert', schema='intermediate') }}
-- Identity resolution across sources: for each track identity, the Spotify URI and the album
-- it is most often seen with, so that plays from sources without them (basic export, Last.fm)
-- join the same track and album; a track no play gave a URI for takes the one a Spotify
-- search matched (enrichment.spotify_search), and its album from the track's metadata. Plain aggregates (not window functions) so DuckDB can spill
-- them to disk within a small memory limit; a table of its own so that int_plays joins a
-- finished, small relation.
-- Incremental: the identities of the events added since the last build are worked out again
-- from all their events (an identity only gains events, so none loses its row); last_event_id,
-- the newest event an identity was worked out from, is where the next build starts reading.
{% set upto = var('event_watermark', none) %}
with
{% if is_incremental() %}
touched as (
    select distinct identity_key
    from {{ ref('int_listen_events') }}
    where event_id > (select coalesce(max(last_event_id), -1) from {{ this }})
      {% if upto is not none %}and event_id <= {{ upto }}{% endif %}
),
{% endif %}

events as (
    select identity_key, spotify_track_uri, album_name, event_id
    from {{ ref('int_listen_events') }}
    where content_kind = 'track'
      and (spotify_track_uri is not null or album_name is not null)
      {% if upto is not none %}and event_id <= {{ upto }}{% endif %}
      {% if is_incremental() %}and identity_key in (select identity_key from touched){% endif %}
),

uri_counts as (
    select identity_key, spotify_track_uri, count(*) as n
    from events
    where spotify_track_uri is not null
    group by identity_key, spotify_track_uri
),

album_counts as (
    select identity_key, album_name, count(*) as n
    from events
    where album_name is not null
    group by identity_key, album_name
),

last_events as (
    select identity_key, max(event_id) as last_event_id
    from events
    group by identity_key
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

searched as (
    select s.identity_key, s.spotify_track_uri, m.album_name
    from {{ ref('stg_spotify_search_matches') }} as s
    left join {{ ref('stg_spotify_tracks_meta') }} as m using (spotify_track_uri)
    {% if is_incremental() %}where s.identity_key in (select identity_key from touched){% endif %}
)

select
    coalesce(k.identity_key, s.identity_key) as identity_key,
    coalesce(k.spotify_track_uri, s.spotify_track_uri) as spotify_track_uri,
    coalesce(k.album_name, s.album_name) as album_name,
    l.last_event_id
from known as k
full outer join searched as s using (identity_key)
left join last_events as l on l.identity_key = coalesce(k.identity_key, s.identity_key)
