{{ config(materialized='table', schema='intermediate') }}
-- The plays a listener hid with their own filters (stg_listener_filters), one row each: only
-- that listener's plays of the artist, album or genre. fact_plays and the dimensions leave
-- them out (raw.listen_events keeps every event).
-- - artist: the artist keys one of whose spellings (any listener's), normalised, is the
--   filter's name, or whose key is (so "Beyonce" hides "Beyoncé" and "BEYONCÉ" too);
-- - album: the plays whose album (their own, else the track's: int_plays' album_key) has
--   that normalised name, by any artist;
-- - genre: the artists int_artist_genres gives that genre.
-- Each step joins the filters first: with none, DuckDB stops reading the plays at once.
with filters as (
    select listener_id, kind, value_normalised
    from {{ ref('stg_listener_filters') }}
    where value_normalised is not null
),

-- The artists of the listeners with an artist filter, and every spelling of those (any
-- listener's: the name dim_artist shows may be another listener's spelling).
filtered_artists as (
    select distinct p.artist_key
    from {{ ref('int_plays') }} as p
    join (select distinct listener_id from filters where kind = 'artist') as f using (listener_id)
),

spellings as (
    select artist_key, {{ normalise_name('artist_name') }} as name_normalised
    from (
        select distinct artist_key, artist_name
        from {{ ref('int_plays') }}
        where artist_key in (select artist_key from filtered_artists)
    )
),

hidden_artists as (
    select distinct f.listener_id, s.artist_key
    from filters as f
    join spellings as s
        on f.value_normalised = s.name_normalised or f.value_normalised = s.artist_key
    where f.kind = 'artist'
    union
    select distinct f.listener_id, g.artist_key
    from filters as f
    join {{ ref('int_artist_genres') }} as g
        on f.value_normalised = {{ normalise_name('g.genre_name') }}
    where f.kind = 'genre'
),

by_artist as (
    select p.event_id, p.listener_id
    from hidden_artists as h
    join {{ ref('int_plays') }} as p
        on p.listener_id = h.listener_id and p.artist_key = h.artist_key
),

by_album as (
    select p.event_id, p.listener_id
    from (select distinct listener_id, value_normalised from filters where kind = 'album') as f
    join {{ ref('int_plays') }} as p
        on p.listener_id = f.listener_id
        and substr(p.album_key, length(p.artist_key) + 2) = f.value_normalised
)

select event_id, listener_id from by_artist
union
select event_id, listener_id from by_album
