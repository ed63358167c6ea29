{{ config(materialized='table', schema='marts') }}
-- Per listener and local day: in how many sessions the day's plays were. A model of its own so
-- that its group-by over every play runs apart from agg_daily_variety's: at 10M plays the two
-- side by side did not fit DuckDB's memory on the default budget, even on one thread.
select listener_id, date_id, count(*) as sessions
from (select listener_id, date_id, session_id from {{ ref('fact_plays') }} group by all)
group by listener_id, date_id
