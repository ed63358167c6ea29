{{ config(materialized='view', schema='staging') }}
-- Spotify artist metadata (GET /v1/artists/{id}): name, genres (often empty since 2026),
-- the largest image.
select
    entity_key as spotify_artist_id,
    body ->> '$.name' as artist_name,
    coalesce(try_cast(body -> '$.genres' as varchar[]), []) as genres,
    body ->> '$.images[0].url' as image_url,
    fetched_at
from {{ source('raw', 'enrichment_responses') }}
where source = 'spotify' and entity = 'artist' and status = 200
qualify row_number() over (partition by entity_key order by fetched_at desc) = 1
