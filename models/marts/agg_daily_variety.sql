{{ config(materialized='table', schema='marts') }}
-- Per listener and local day: how many different tracks were played and in how many sessions.
-- A model of its own (agg_daily_listening joins it) so that its large group-by over every play
-- runs alone: in one query with agg_daily_listening's other aggregates, or beside the sessions'
-- group-by (agg_daily_sessions, a model of its own for that reason), it did not fit DuckDB's
-- memory at 10M plays on the default budget. Plain group-bys (no count distinct) so DuckDB can
-- spill them.
with by_track as (
    select listener_id, date_id, count(*) as distinct_tracks
    from (select listener_id, date_id, track_id from {{ ref('fact_plays') }} group by all)
    group by listener_id, date_id
)

select
    t.listener_id,
    t.date_id,
    t.distinct_tracks,
    s.sessions
from by_track as t
join {{ ref('agg_daily_sessions') }} as s using (listener_id, date_id)
