{{ config(materialized='view', schema='staging') }}
-- Each artist's country as enrichment derived it (MusicBrainz country, or the area chain walked
-- up to a country).
select
    entity_key as artist_key,
    upper(body ->> '$.country_code') as country_code,
    fetched_at
from {{ source('raw', 'enrichment_responses') }}
where source = 'geo' and entity = 'artist' and status = 0
qualify row_number() over (partition by entity_key order by fetched_at desc) = 1
