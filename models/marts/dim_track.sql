{{ config(materialized='table', schema='marts') }}
-- One row per track: its Spotify URI when any source gave one, else its normalised
-- "artist|track" identity; duration, explicit flag and ISRC once enrichment has looked it up.
-- int_plays is read where needed, not through a CTE: DuckDB materialises a CTE read twice,
-- a copy of every play.
with albums as (
    -- A track's album: the one it is most often played from.
    select track_key, first(album_key order by n desc, album_key) as album_key
    from (select track_key, album_key, count(*) as n from {{ ref('int_plays') }} group by track_key, album_key)
    group by track_key
),

tracks as (
select
    {{ generate_surrogate_key(['p.track_key']) }} as track_id,
    p.track_key,
    min(p.track_name) as track_name,
    {{ generate_surrogate_key(['min(p.artist_key)']) }} as artist_id,
    {{ generate_surrogate_key(['a.album_key']) }} as album_id,
    min(p.spotify_track_uri) as spotify_track_uri,
    max(p.ms_played) filter (where not p.ms_played_estimated) as longest_play_ms,
    count(*) as play_count,
    sum(p.ms_played) as ms_played,
    min(p.ended_at) as first_played_at,
    max(p.ended_at) as last_played_at
from {{ ref('int_plays') }} as p
join albums as a using (track_key)
group by p.track_key, a.album_key
)

select
    t.*,
    m.duration_ms,
    m.explicit,
    m.isrc
from tracks as t
left join {{ ref('stg_spotify_tracks_meta') }} as m using (spotify_track_uri)
