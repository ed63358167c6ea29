{{ config(materialized='table', schema='marts') }}
-- Runs of consecutive local days with at least one play, per listener (gaps and islands).
with days as (
    select distinct f.listener_id, d.date_day
    from {{ ref('fact_plays') }} as f
    join {{ ref('dim_date') }} as d using (date_id)
),

islands as (
    select
        listener_id,
        date_day,
        date_day - cast(row_number() over (partition by listener_id order by date_day) as integer) as island
    from days
)

select
    listener_id,
    min(date_day) as streak_start,
    max(date_day) as streak_end,
    count(*) as days
from islands
group by listener_id, island
