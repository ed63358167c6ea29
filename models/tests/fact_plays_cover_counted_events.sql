-- Every counted, non-duplicate music event of at least var('min_play_ms') from the Spotify
-- sources is exactly one fact row (and no fact row comes from elsewhere). Returns mismatches.
with expected as (
    select event_id
    from {{ source('raw', 'listen_events') }}
    where duplicate_of is null
      and content_kind = 'track'
      and source_kind in ('spotify_extended', 'spotify_basic')
      and ms_played >= {{ var('min_play_ms') }}
      {% if not var('include_incognito') %}and not coalesce(incognito_mode, false){% endif %}
),

actual as (
    select event_id from {{ ref('fact_plays') }} where source_kind in ('spotify_extended', 'spotify_basic')
)

select 'missing' as problem, event_id from (select event_id from expected except all select event_id from actual)
union all
select 'extra' as problem, event_id from (select event_id from actual except all select event_id from expected)
