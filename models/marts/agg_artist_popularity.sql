{{ config(materialized='table', schema='marts') }}
-- Popularity from the listener's own play counts (Spotify no longer returns popularity):
-- each artist's rank and group among all the artists that listener played.
with counts as (
    select listener_id, artist_id, count(*) as plays, sum(ms_played) as ms_played
    from {{ ref('fact_plays') }}
    group by listener_id, artist_id
),

ranked as (
    select
        *,
        rank() over (partition by listener_id order by plays desc) as play_rank,
        percent_rank() over (partition by listener_id order by plays desc) as share_above
    from counts
)

select
    listener_id,
    artist_id,
    plays,
    ms_played,
    play_rank,
    case
        when share_above < 0.01 then 'favourite'
        when share_above < 0.10 then 'heavy rotation'
        when plays >= 10 then 'regular'
        when plays > 1 then 'occasional'
        else 'one-off'
    end as popularity_group
from ranked
