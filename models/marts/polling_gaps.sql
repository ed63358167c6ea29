{{ config(materialized='table', schema='marts') }}
-- Completeness of live polling: each window in which the Spotify poller may have missed plays
-- (it saw a full page of 50), and whether an export imported since covers it (holds plays of
-- that listener ending inside the window).
select
    g.listener_id,
    g.gap_from,
    g.gap_to,
    g.found_at,
    g.reason,
    count(e.event_id) as export_events,
    count(e.event_id) > 0 as covered_by_export
from {{ source('raw', 'spotify_gaps') }} as g
left join {{ ref('int_listen_events') }} as e
    on e.listener_id = g.listener_id
    and e.source_kind in ('spotify_extended', 'spotify_basic')
    and e.ended_at > g.gap_from
    and e.ended_at < g.gap_to
group by g.listener_id, g.gap_from, g.gap_to, g.found_at, g.reason
