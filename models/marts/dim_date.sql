{{ config(materialized='table', schema='marts') }}
-- The calendar over the listening history, in the listener's time zone.
with bounds as (
    select min(played_at_local)::date as first_day, max(played_at_local)::date as last_day
    from {{ ref('fact_plays') }}
),

days as (
    select unnest(generate_series(first_day, last_day, interval 1 day))::date as date_day
    from bounds
    where first_day is not null
)

select
    cast(strftime(date_day, '%Y%m%d') as integer) as date_id,
    date_day,
    year(date_day) as year,
    quarter(date_day) as quarter,
    month(date_day) as month,
    monthname(date_day) as month_name,
    weekofyear(date_day) as iso_week,
    yearweek(date_day) as iso_year_week,
    isodow(date_day) as day_of_week,
    dayname(date_day) as day_name,
    isodow(date_day) >= 6 as is_weekend
from days
