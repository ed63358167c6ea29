{{ config(materialized='view', schema='staging') }}
-- MusicBrainz artists (GET /ws/2/artist/{mbid}?inc=genres+tags), one per magpie artist key:
-- the MBID, type, country, areas, life span, genres and tags with their vote counts.
with parsed as (
    select
        entity_key,
        fetched_at,
        from_json(body, '{"id": "VARCHAR", "name": "VARCHAR", "type": "VARCHAR", "country": "VARCHAR",
            "area": {"name": "VARCHAR"}, "begin-area": {"name": "VARCHAR"},
            "life-span": {"begin": "VARCHAR", "end": "VARCHAR"},
            "genres": [{"name": "VARCHAR", "count": "INTEGER"}],
            "tags": [{"name": "VARCHAR", "count": "INTEGER"}]}') as j
    from {{ source('raw', 'enrichment_responses') }}
    where source = 'musicbrainz' and entity = 'artist' and status = 200
)

select
    entity_key as artist_key,
    j.id as musicbrainz_id,
    j.name as artist_name,
    j.type as artist_type,
    nullif(j.country, '') as country_code,
    j.area.name as area_name,
    j."begin-area".name as begin_area_name,
    j."life-span".begin as active_from,
    j."life-span".end as active_to,
    coalesce(j.genres, []) as genres,
    coalesce(j.tags, []) as tags,
    fetched_at
from parsed
