{{ config(materialized='table', schema='marts') }}
-- One row per track: its Spotify URI when any source gave one, else its normalised
-- "artist|track" identity; duration, explicit flag and ISRC once enrichment has looked it up.
-- The plays are aggregated per track before anything is joined to them (a join first would
-- hold every track's album in a hash table while the aggregate holds every track: more than
-- DuckDB's memory at 10M plays on the default budget); int_plays is read where needed, not
-- through a CTE (DuckDB materialises a CTE read twice: a copy of every play). Totals over
-- the plays no listener hid (int_hidden_plays): a track whose every play is hidden has no row.
with uris as (
    -- The Spotify URIs identity resolution gave tracks: a track whose key is one of them is
    -- that Spotify track (int_plays keys a track by its URI whenever one is known, so the
    -- plays need not carry the URI a second time).
    select distinct spotify_track_uri
    from {{ ref('int_track_identities') }}
    where spotify_track_uri is not null
),

albums as (
    -- A track's album: the one it is most often played from.
    select track_key, first(album_key order by n desc, album_key) as album_key
    from (
        select track_key, album_key, count(*) as n
        from {{ ref('int_plays') }} as p
        where not exists (select 1 from {{ ref('int_hidden_plays') }} as h where h.event_id = p.event_id)
        group by track_key, album_key
    )
    group by track_key
),

tracks as (
    select
        track_key,
        min(track_name) as track_name,
        min(artist_key) as artist_key,
        max(ms_played) filter (where not ms_played_estimated) as longest_play_ms,
        count(*) as play_count,
        sum(ms_played) as ms_played,
        min(ended_at) as first_played_at,
        max(ended_at) as last_played_at
    from {{ ref('int_plays') }} as p
    where not exists (select 1 from {{ ref('int_hidden_plays') }} as h where h.event_id = p.event_id)
    group by track_key
)

select
    {{ generate_surrogate_key(['t.track_key']) }} as track_id,
    t.track_key,
    t.track_name,
    {{ generate_surrogate_key(['t.artist_key']) }} as artist_id,
    {{ generate_surrogate_key(['a.album_key']) }} as album_id,
    u.spotify_track_uri,
    t.longest_play_ms,
    t.play_count,
    t.ms_played,
    t.first_played_at,
    t.last_played_at,
    m.duration_ms,
    m.explicit,
    m.isrc
from tracks as t
join albums as a using (track_key)
left join uris as u on u.spotify_track_uri = t.track_key
left join {{ ref('stg_spotify_tracks_meta') }} as m on m.spotify_track_uri = u.spotify_track_uri
