{{ config(materialized='table', schema='marts') }}
-- The first play of every artist and track per listener: discoveries.
select listener_id, 'artist' as entity_kind, artist_id as entity_id, min(played_at) as first_played_at,
       arg_min(date_id, played_at) as first_date_id, count(*) as plays_since
from {{ ref('fact_plays') }}
group by listener_id, artist_id
union all
select listener_id, 'track' as entity_kind, track_id as entity_id, min(played_at) as first_played_at,
       arg_min(date_id, played_at) as first_date_id, count(*) as plays_since
from {{ ref('fact_plays') }}
group by listener_id, track_id
