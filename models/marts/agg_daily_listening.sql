{{ config(materialized='table', schema='marts') }}
-- Per listener and local day: plays, time, variety, skips and first-time artists. The
-- timeline and calendar pages read this instead of scanning every play.
with firsts as (
    select listener_id, artist_id, min(played_at) as first_played_at
    from {{ ref('fact_plays') }}
    group by listener_id, artist_id
)

select
    f.listener_id,
    f.date_id,
    count(*) as plays,
    sum(f.ms_played) as ms_played,
    count(distinct f.artist_id) as distinct_artists,
    count(distinct f.track_id) as distinct_tracks,
    count(*) filter (where f.skipped) as skips,
    count(distinct f.artist_id) filter (where f.played_at = fi.first_played_at) as new_artists,
    count(distinct f.session_id) as sessions
from {{ ref('fact_plays') }} as f
join firsts as fi using (listener_id, artist_id)
group by f.listener_id, f.date_id
