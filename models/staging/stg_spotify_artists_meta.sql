{{ config(materialized='view', schema='staging') }}
-- Spotify artist metadata (GET /v1/artists/{id}): name, genres (often empty since 2026),
-- the largest image.
with parsed as (
    select
        entity_key,
        fetched_at,
        from_json(body, '{"name": "VARCHAR", "genres": ["VARCHAR"], "images": [{"url": "VARCHAR"}]}') as j
    from {{ source('raw', 'enrichment_responses') }}
    where source = 'spotify' and entity = 'artist' and status = 200
)

select
    entity_key as spotify_artist_id,
    j.name as artist_name,
    coalesce(j.genres, []) as genres,
    j.images[1].url as image_url,
    fetched_at
from parsed
