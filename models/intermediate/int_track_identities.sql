{{ config(materialized='table', schema='intermediate') }}
-- Identity resolution across sources: for each track identity, the Spotify URI and the album
-- it is most often seen with, so that plays from sources without them (basic export, Last.fm)
-- join the same track and album. Plain aggregates (not window functions) so DuckDB can spill
-- them to disk within a small memory limit; a table of its own so that int_plays joins a
-- finished, small relation.
with uri_counts as (
    select identity_key, spotify_track_uri, count(*) as n
    from {{ ref('int_listen_events') }}
    where content_kind = 'track' and spotify_track_uri is not null
    group by identity_key, spotify_track_uri
),

album_counts as (
    select identity_key, album_name, count(*) as n
    from {{ ref('int_listen_events') }}
    where content_kind = 'track' and album_name is not null
    group by identity_key, album_name
),

known as (
    select
        coalesce(u.identity_key, a.identity_key) as identity_key,
        u.spotify_track_uri,
        a.album_name
    from (
        select identity_key, first(spotify_track_uri order by n desc, spotify_track_uri) as spotify_track_uri
        from uri_counts group by identity_key
    ) as u
    full outer join (
        select identity_key, first(album_name order by n desc, album_name) as album_name
        from album_counts group by identity_key
    ) as a using (identity_key)
)

select * from known
