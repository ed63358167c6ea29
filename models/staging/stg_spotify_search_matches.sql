{{ config(materialized='view', schema='staging') }}
-- Tracks that came without a Spotify URI (basic export, Last.fm) and that a Spotify search
-- matched by artist and title (only with enrichment.spotify_search on): identity key -> URI.
select
    entity_key as identity_key,
    'spotify:track:' || json_extract_string(body, '$.spotify_track_id') as spotify_track_uri,
    fetched_at
from {{ source('raw', 'enrichment_responses') }}
where source = 'spotify' and entity = 'search_match' and status = 0
