{{ config(materialized='view', schema='staging') }}
-- Each artist's country as enrichment derived it (MusicBrainz country, or the area chain walked
-- up to a country).
select
    entity_key as artist_key,
    upper(json_extract_string(body, '$.country_code')) as country_code,
    fetched_at
from {{ source('raw', 'enrichment_responses') }}
where source = 'geo' and entity = 'artist' and status = 0
