{{ config(materialized='table', schema='marts') }}
-- Per listener, local day and hour of day: plays and time. The hour x weekday heatmap and
-- the part-of-day split read this.
select
    listener_id,
    date_id,
    cast(time_id // 60 as integer) as hour,
    count(*) as plays,
    sum(ms_played) as ms_played
from {{ ref('fact_plays') }}
group by listener_id, date_id, cast(time_id // 60 as integer)
