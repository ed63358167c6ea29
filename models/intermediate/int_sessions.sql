{{ config(materialized='incremental', unique_key='listener_id', incremental_strategy='delete+insert', schema='intermediate') }}
-- Listening sessions, one row each: a new one starts after var('session_gap_minutes') of
-- silence between the end of one play and the start of the next. Numbered from 1 per listener
-- in time order, with the end of their first and last play: fact_plays finds a play's session
-- by its listener, day and end time (sessions never overlap: the next one starts at least the
-- gap after the last play of this one ends). One row per session, not per play: fact_plays'
-- join then holds ~25k sessions where it held every play (at 350k plays: fact_plays spilled
-- 25 MB instead of 75 MB within the default memory limit, and took ~17 % less time).
-- Incremental: only the listeners with plays int_plays wrote in this build, and of those only
-- the sessions from the first one such a play can join or split; the sessions before it stay
-- as they are (with their numbers: they all come earlier). A listener's rows are replaced as a
-- whole (unique_key listener_id), the kept ones read back from this table.
-- invocation_id marks the sessions this build numbered, for fact_plays.
{% if is_incremental() %}
with changed as (
    select
        listener_id,
        min(ended_at - to_milliseconds(ms_played)) as changed_from,
        min(ended_at) as first_changed_end
    from {{ ref('int_plays') }}
    where invocation_id = '{{ invocation_id }}'
    group by listener_id
),

-- Per listener: where sessions are numbered again. The first session that ends less than the
-- gap before a changed play's start may change (a play can join it), and so may every one
-- after; a changed play before all of those starts a session of its own.
bounds as (
    select
        c.listener_id,
        least(coalesce(min(s.first_ended_at), c.first_changed_end), c.first_changed_end) as renumber_from
    from changed as c
    left join {{ this }} as s
        on s.listener_id = c.listener_id
        and s.last_ended_at >= c.changed_from - to_minutes({{ var('session_gap_minutes') }})
    group by c.listener_id, c.first_changed_end
),

kept as (
    select s.listener_id, s.session_number, s.first_ended_at, s.last_ended_at, s.invocation_id
    from {{ this }} as s
    join bounds as b using (listener_id)
    where s.first_ended_at < b.renumber_from
),

plays as (
    select p.listener_id, p.ended_at, p.ms_played, p.event_id
    from {{ ref('int_plays') }} as p
    join bounds as b using (listener_id)
    where p.ended_at >= b.renumber_from
),

numbered_before as (
    select b.listener_id, count(k.session_number) as sessions
    from bounds as b
    left join kept as k using (listener_id)
    group by b.listener_id
),
{% else %}
with plays as (
    select listener_id, ended_at, ms_played, event_id
    from {{ ref('int_plays') }}
),
{% endif %}

ordered as (
    select
        listener_id,
        ended_at,
        ended_at - to_milliseconds(ms_played) as started_at,
        lag(ended_at) over (partition by listener_id order by ended_at, event_id) as previous_end
    from plays
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
    from plays
    group by listener_id
),

sessions as (
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
)

{% if is_incremental() %}
select listener_id, session_number, first_ended_at, last_ended_at, invocation_id
from kept
union all
select
    s.listener_id,
    n.sessions + s.session_number as session_number,
    s.first_ended_at,
    s.last_ended_at,
    '{{ invocation_id }}' as invocation_id
from sessions as s
join numbered_before as n using (listener_id)
{% else %}
select *, '{{ invocation_id }}' as invocation_id
from sessions
{% endif %}
