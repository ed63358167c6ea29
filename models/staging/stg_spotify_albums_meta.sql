{{ config(materialized='view', schema='staging') }}
-- Spotify album metadata (GET /v1/albums/{id}): type, release date (as precise as Spotify
-- knows it), track count, the largest image.
with parsed as (
    select
        entity_key,
        fetched_at,
        from_json(body, '{"name": "VARCHAR", "album_type": "VARCHAR", "release_date": "VARCHAR",
            "release_date_precision": "VARCHAR", "total_tracks": "INTEGER", "images": [{"url": "VARCHAR"}]}') as j
    from {{ source('raw', 'enrichment_responses') }}
    where source = 'spotify' and entity = 'album' and status = 200
)

select
    entity_key as spotify_album_id,
    j.name as album_name,
    j.album_type,
    j.release_date,
    j.release_date_precision,
    try_cast(left(j.release_date, 4) as integer) as release_year,
    j.total_tracks,
    j.images[1].url as image_url,
    fetched_at
from parsed
