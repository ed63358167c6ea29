{{ config(materialized='view', schema='staging') }}
-- Spotify track metadata (GET /v1/tracks/{id}, kept by enrichment): one row per track looked
-- up. The JSON is read once into a typed struct (one from_json call: each JSON function keeps
-- its own buffers, which a small memory limit cannot afford per field).
with parsed as (
    select
        entity_key,
        fetched_at,
        from_json(body, '{"name": "VARCHAR", "duration_ms": "BIGINT", "explicit": "BOOLEAN",
            "external_ids": {"isrc": "VARCHAR"}, "artists": [{"id": "VARCHAR", "name": "VARCHAR"}],
            "album": {"id": "VARCHAR", "name": "VARCHAR"}}') as j
    from {{ source('raw', 'enrichment_responses') }}
    where source = 'spotify' and entity = 'track' and status = 200
)

select
    entity_key as spotify_track_id,
    'spotify:track:' || entity_key as spotify_track_uri,
    j.name as track_name,
    j.duration_ms,
    j.explicit,
    j.external_ids.isrc as isrc,
    j.artists[1].id as spotify_artist_id,
    j.album.id as spotify_album_id,
    j.album.name as album_name,
    fetched_at
from parsed
