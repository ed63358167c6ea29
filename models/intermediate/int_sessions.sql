{{ config(materialized='table', schema='intermediate') }}
-- Listening sessions, one row each: a new one starts after var('session_gap_minutes') of
-- silence between the end of one play and the start of the next. Numbered from 1 per listener
-- in time order, with the end of their first and last play: fact_plays finds a play's session
-- by its listener, day and end time (sessions never overlap: the next one starts at least the
-- gap after the last play of this one ends). One row per session, not per play: fact_plays'
-- join then holds ~25k sessions where it held every play (at 350k plays: fact_plays spilled
-- 25 MB instead of 75 MB within the default memory limit, and took ~17 % less time).
with ordered as (
    select
        listener_id,
        ended_at,
        ended_at - to_milliseconds(ms_played) as started_at,
        lag(ended_at) over (partition by listener_id order by ended_at, event_id) as previous_end
    from {{ ref('int_plays') }}
),

-- The plays that start a session. Only these are ordered again (a tenth of the plays, where a
-- running sum over every play sorted them all a second time: ~68 -> ~48 ms at 350k plays):
-- the play before each start (its previous_end) is the last play of the session before it,
-- and a listener's last session ends with their last play.
starts as (
    select listener_id, ended_at as first_ended_at, previous_end
    from ordered
    where previous_end is null
       or started_at - previous_end >= to_minutes({{ var('session_gap_minutes') }})
),

last_play as (
    select listener_id, max(ended_at) as ended_at
    from {{ ref('int_plays') }}
    group by listener_id
)

select
    s.listener_id,
    row_number() over (partition by s.listener_id order by s.first_ended_at) as session_number,
    s.first_ended_at,
    coalesce(
        lead(s.previous_end) over (partition by s.listener_id order by s.first_ended_at),
        l.ended_at
    ) as last_ended_at
from starts as s
join last_play as l using (listener_id)
