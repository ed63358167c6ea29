{{ config(materialized='view', schema='staging') }}
-- MusicBrainz artists (GET /ws/2/artist/{mbid}?inc=genres+tags), one per magpie artist key:
-- the MBID, type, country, areas, life span, genres and tags with their vote counts.
select
    entity_key as artist_key,
    body ->> '$.id' as musicbrainz_id,
    body ->> '$.name' as artist_name,
    body ->> '$.type' as artist_type,
    nullif(body ->> '$.country', '') as country_code,
    body ->> '$.area.name' as area_name,
    body ->> '$."begin-area".name' as begin_area_name,
    body ->> '$."life-span".begin' as active_from,
    body ->> '$."life-span".end' as active_to,
    coalesce(
        try_cast(body -> '$.genres' as struct(name varchar, count integer)[]), []
    ) as genres,
    coalesce(
        try_cast(body -> '$.tags' as struct(name varchar, count integer)[]), []
    ) as tags,
    fetched_at
from {{ source('raw', 'enrichment_responses') }}
where source = 'musicbrainz' and entity = 'artist' and status = 200
qualify row_number() over (partition by entity_key order by fetched_at desc) = 1
