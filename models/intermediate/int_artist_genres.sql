{{ config(materialized='table', schema='intermediate') }}
-- Each artist's genres: MusicBrainz's (voted by its editors; the count is the weight) where it
-- has any, else Spotify's artist genres (weight 1). Genre names lower case, trimmed.
with musicbrainz as (
    select artist_key, lower(trim(g.name)) as genre_name, greatest(g.count, 1) as weight
    from (select artist_key, unnest(genres) as g from {{ ref('stg_musicbrainz_artists') }})
    where g.count > 0
),

spotify as (
    select e.artist_key, lower(trim(unnest(sa.genres))) as genre_name, 1 as weight
    from {{ ref('int_artist_enrichment') }} as e
    join {{ ref('stg_spotify_artists_meta') }} as sa using (spotify_artist_id)
    where e.artist_key not in (select artist_key from musicbrainz)
)

select artist_key, genre_name, 'musicbrainz' as genre_source, max(weight) as weight
from musicbrainz where genre_name <> ''
group by artist_key, genre_name
union all
select artist_key, genre_name, 'spotify' as genre_source, max(weight) as weight
from spotify where genre_name <> ''
group by artist_key, genre_name
