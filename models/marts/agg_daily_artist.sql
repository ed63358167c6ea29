{{ config(materialized='table', schema='marts') }}
-- Per listener, local day and artist: plays, time and skips, with the times of the day's
-- first and last play. Artist rankings, the map and genre shares read this (a few rows per day) instead of
-- every play.
select
    listener_id,
    date_id,
    artist_id,
    count(*) as plays,
    sum(ms_played) as ms_played,
    count(*) filter (where skipped) as skips,
    min(played_at) as first_played_at,
    max(played_at) as last_played_at
from {{ ref('fact_plays') }}
group by listener_id, date_id, artist_id
