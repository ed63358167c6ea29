{{ config(materialized='view', schema='staging') }}
-- Spotify track metadata (GET /v1/tracks/{id}, kept by enrichment): the latest lookup of each
-- track.
select
    entity_key as spotify_track_id,
    'spotify:track:' || entity_key as spotify_track_uri,
    body ->> '$.name' as track_name,
    try_cast(body ->> '$.duration_ms' as bigint) as duration_ms,
    try_cast(body ->> '$.explicit' as boolean) as explicit,
    body ->> '$.external_ids.isrc' as isrc,
    body ->> '$.artists[0].id' as spotify_artist_id,
    body ->> '$.album.id' as spotify_album_id,
    fetched_at
from {{ source('raw', 'enrichment_responses') }}
where source = 'spotify' and entity = 'track' and status = 200
qualify row_number() over (partition by entity_key order by fetched_at desc) = 1
