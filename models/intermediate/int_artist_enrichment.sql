{{ config(materialized='table', schema='intermediate') }}
-- What enrichment knows of each artist (magpie's artist key): the Spotify artist most of its
-- played tracks belong to, MusicBrainz's id, type, areas and life span, its country
-- (MusicBrainz's own, else the one found by walking the area chain; ISO or not: XW, XE, SU ...)
-- and the MBID a listening source supplied that MusicBrainz enrichment distrusted (the
-- MusicBrainz artist of that id is called something else).
with track_plays as (
    select p.artist_key, t.spotify_artist_id, count(*) as n
    from {{ ref('int_plays') }} as p
    -- (a play's track_key is its Spotify URI whenever one is known)
    join {{ ref('stg_spotify_tracks_meta') }} as t on t.spotify_track_uri = p.track_key
    where t.spotify_artist_id is not null
    group by p.artist_key, t.spotify_artist_id
),

spotify as (
    select artist_key, first(spotify_artist_id order by n desc, spotify_artist_id) as spotify_artist_id
    from track_plays
    group by artist_key
),

distrusted as (
    select entity_key as artist_key, json_extract_string(body, '$.claimed_mbid') as distrusted_mbid
    from {{ source('raw', 'enrichment_responses') }}
    where source = 'musicbrainz' and entity = 'mbid_check' and status = 0
      and json_extract_string(body, '$.trusted') = 'false'
),

keys as (
    select artist_key from spotify
    union
    select artist_key from distrusted
    union
    select artist_key from {{ ref('stg_musicbrainz_artists') }}
    union
    select artist_key from {{ ref('stg_geo_artists') }}
)

select
    k.artist_key,
    s.spotify_artist_id,
    sa.image_url,
    mb.musicbrainz_id,
    mb.artist_type,
    mb.area_name,
    mb.begin_area_name,
    mb.active_from,
    mb.active_to,
    upper(coalesce(mb.country_code, g.country_code)) as country_code,
    d.distrusted_mbid
from keys as k
left join spotify as s using (artist_key)
left join {{ ref('stg_spotify_artists_meta') }} as sa using (spotify_artist_id)
left join {{ ref('stg_musicbrainz_artists') }} as mb using (artist_key)
left join {{ ref('stg_geo_artists') }} as g using (artist_key)
left join distrusted as d using (artist_key)
