{{ config(materialized='view', schema='staging') }}
-- Spotify album metadata (GET /v1/albums/{id}): type, release date (as precise as Spotify
-- knows it), track count, the largest image.
select
    entity_key as spotify_album_id,
    body ->> '$.name' as album_name,
    body ->> '$.album_type' as album_type,
    body ->> '$.release_date' as release_date,
    body ->> '$.release_date_precision' as release_date_precision,
    try_cast(left(body ->> '$.release_date', 4) as integer) as release_year,
    try_cast(body ->> '$.total_tracks' as integer) as total_tracks,
    body ->> '$.images[0].url' as image_url,
    fetched_at
from {{ source('raw', 'enrichment_responses') }}
where source = 'spotify' and entity = 'album' and status = 200
qualify row_number() over (partition by entity_key order by fetched_at desc) = 1
