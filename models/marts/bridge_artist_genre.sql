{{ config(materialized='table', schema='marts') }}
-- Which artist has which genre, with where that came from (musicbrainz or spotify) and its
-- weight (MusicBrainz votes; 1 for Spotify). weight_share divides each artist into its genres
-- (summing to 1), for when a play must count once across genres.
select
    a.artist_id,
    {{ generate_surrogate_key(['g.genre_name']) }} as genre_id,
    g.genre_source,
    g.weight,
    g.weight / sum(g.weight) over (partition by g.artist_key) as weight_share
from {{ ref('int_artist_genres') }} as g
join {{ ref('dim_artist') }} as a using (artist_key)
