{{ config(materialized='table', schema='marts') }}
-- Per listener and local day: plays, time, variety, skips, sessions and first-time artists.
-- The timeline and calendar pages read this instead of scanning every play. Built from plain
-- group-bys (no count distinct) so it spills within a small memory limit; distinct tracks and
-- sessions come from agg_daily_variety.
with artist_days as (
    select listener_id, date_id, artist_id, plays, ms_played, skips,
           first_played_at as first_played_that_day
    from {{ ref('agg_daily_artist') }}
),

first_plays as (
    select listener_id, artist_id, min(first_played_at) as first_played_at
    from {{ ref('agg_daily_artist') }}
    group by listener_id, artist_id
),

by_artist as (
    select
        a.listener_id,
        a.date_id,
        sum(a.plays) as plays,
        sum(a.ms_played) as ms_played,
        count(*) as distinct_artists,
        sum(a.skips) as skips,
        count(*) filter (where a.first_played_that_day = f.first_played_at) as new_artists
    from artist_days as a
    join first_plays as f using (listener_id, artist_id)
    group by a.listener_id, a.date_id
)

select
    b.listener_id,
    b.date_id,
    b.plays,
    b.ms_played,
    b.distinct_artists,
    v.distinct_tracks,
    b.skips,
    b.new_artists,
    v.sessions
from by_artist as b
join {{ ref('agg_daily_variety') }} as v using (listener_id, date_id)
