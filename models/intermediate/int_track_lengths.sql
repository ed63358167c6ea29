{{ config(materialized='view', schema='intermediate') }}
-- How long each track lasts, as far as the sources that time plays know: the longest play
-- seen (a full play). Used to estimate plays whose length a source does not give (Last.fm,
-- and submitted listens without a length), so only those tracks are looked up, and that filter comes before the
-- aggregate: without scrobbles nothing is aggregated. (Every read of int_listen_events
-- evaluates this view; aggregating every Spotify play for nothing cost int_plays 8 MB of
-- DuckDB's memory and half of its spill at 350,000 plays.)
select
    identity_key,
    max(ms_played) as typical_ms
from (
    select identity_key, ms_played from {{ ref('stg_spotify_extended') }} where content_kind = 'track'
    union all
    select identity_key, ms_played from {{ ref('stg_spotify_basic') }} where content_kind = 'track'
    union all
    select identity_key, ms_played from {{ ref('stg_spotify_api') }} where content_kind = 'track'
)
where ms_played is not null
  and identity_key in (
      select identity_key from {{ ref('stg_lastfm') }}
      union all
      select identity_key from {{ ref('stg_scrobbles') }} where ms_played is null and track_duration_ms is null
  )
group by identity_key
