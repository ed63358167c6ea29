{{ config(materialized='view', schema='intermediate') }}
-- How long each track lasts, as far as the sources that time plays know: the longest play
-- seen (a full play). Used to estimate plays whose length a source does not give (Last.fm).
select
    identity_key,
    max(ms_played) as typical_ms
from (
    select identity_key, ms_played from {{ ref('stg_spotify_extended') }} where content_kind = 'track'
    union all
    select identity_key, ms_played from {{ ref('stg_spotify_basic') }} where content_kind = 'track'
    union all
    select identity_key, ms_played from {{ ref('stg_spotify_api') }} where content_kind = 'track'
)
where ms_played is not null
group by identity_key
