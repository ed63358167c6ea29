{{ config(materialized='table', schema='intermediate') }}
-- Listening sessions: a new one starts after var('session_gap_minutes') of silence between the
-- end of one play and the start of the next.
-- (fact_plays derives session_id from listener and number: a key per play is cheaper to make
-- there than to carry through the join.) Numbered from 1 per listener in time order.
with ordered as (
    select
        event_id,
        listener_id,
        ended_at,
        ended_at - to_milliseconds(ms_played) as started_at,
        lag(ended_at) over (partition by listener_id order by ended_at, event_id) as previous_end
    from {{ ref('int_plays') }}
),

flagged as (
    select
        *,
        case
            when previous_end is null then 1
            when started_at - previous_end >= to_minutes({{ var('session_gap_minutes') }}) then 1
            else 0
        end as starts_session
    from ordered
),

numbered as (
    select
        *,
        sum(starts_session) over (
            partition by listener_id order by ended_at, event_id rows between unbounded preceding and current row
        ) as session_number
    from flagged
)

select
    event_id,
    listener_id,
    cast(session_number as bigint) as session_number
from numbered
