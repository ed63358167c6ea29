-- Every counted, non-duplicate music event of at least var('min_play_ms') from the Spotify
-- sources, but those its listener hid with their own filters (int_hidden_plays), is exactly
-- one fact row (and no fact row comes from elsewhere). Returns mismatches.
-- Events above var('event_watermark') are the next build's (see int_plays).
{% set upto = var('event_watermark', none) %}
with expected as (
    select event_id
    from {{ source('raw', 'listen_events') }}
    where duplicate_of is null
      and content_kind = 'track'
      and source_kind in ('spotify_extended', 'spotify_basic')
      and ms_played >= {{ var('min_play_ms') }}
      {% if not var('include_incognito') %}and not coalesce(incognito_mode, false){% endif %}
      {% if upto is not none %}and event_id <= {{ upto }}{% endif %}
      and event_id not in (select event_id from {{ ref('int_hidden_plays') }})
),

actual as (
    select event_id from {{ ref('fact_plays') }} where source_kind in ('spotify_extended', 'spotify_basic')
),

-- One count per side and event (an aggregate, not two EXCEPT ALLs: one pass over the plays).
counted as (
    select event_id, sum(expected) as expected, sum(actual) as actual
    from (
        select event_id, 1 as expected, 0 as actual from expected
        union all
        select event_id, 0 as expected, 1 as actual from actual
    )
    group by event_id
)

select case when expected > actual then 'missing' else 'extra' end as problem, event_id
from counted
where expected <> actual
