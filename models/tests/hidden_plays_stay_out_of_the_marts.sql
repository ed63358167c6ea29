-- A listener's own filters: no play int_hidden_plays lists is in fact_plays, and only plays of
-- a listener with a filter are hidden (another listener's identical plays stay counted).
-- Returns the offending plays.
select 'hidden play counted' as problem, f.event_id
from {{ ref('fact_plays') }} as f
join {{ ref('int_hidden_plays') }} as h using (event_id)
union all
select 'hidden without a filter' as problem, h.event_id
from {{ ref('int_hidden_plays') }} as h
where h.listener_id not in (select listener_id from {{ ref('stg_listener_filters') }})
