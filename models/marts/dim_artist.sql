{{ config(materialized='table', schema='marts') }}
-- One row per artist (normalised name), with the name as most often written, the identifiers
-- the sources and enrichment gave, and where the artist comes from (country, areas) once
-- enrichment knows it. Totals over the plays no listener hid (int_hidden_plays): an artist
-- whose every play is hidden has no row.
-- int_plays is read where needed, not through a CTE: DuckDB materialises a CTE read twice,
-- a copy of every play.
-- An artist key can merge several spellings ("Beyoncé", "Beyonce"), each with the MBID its
-- source gave: the MBID is the most played spelling's (then its most frequent MBID; ties: the
-- smallest), as the name is the most played spelling. MusicBrainz enrichment's MBID comes
-- first: it is the supplied one when MusicBrainz names it as played, and a supplied MBID that
-- enrichment distrusted is not used.
with spellings as (
    select
        artist_key, artist_name, artist_mbid, count(*) as n,
        sum(count(*)) over (partition by artist_key, artist_name) as spelling_n
    from {{ ref('int_plays') }} as p
    where not exists (select 1 from {{ ref('int_hidden_plays') }} as h where h.event_id = p.event_id)
    group by artist_key, artist_name, artist_mbid
),

names as (
    select
        artist_key,
        first(artist_name order by spelling_n desc, artist_name) as artist_name,
        first(artist_mbid order by spelling_n desc, n desc, artist_mbid) filter (where artist_mbid is not null) as artist_mbid
    from spellings
    group by artist_key
),

ids as (
    select
        artist_key,
        min(spotify_artist_uri) as spotify_artist_uri,
        count(*) as play_count,
        sum(ms_played) as ms_played,
        min(ended_at) as first_played_at,
        max(ended_at) as last_played_at
    from {{ ref('int_plays') }} as p
    where not exists (select 1 from {{ ref('int_hidden_plays') }} as h where h.event_id = p.event_id)
    group by artist_key
)

select
    {{ generate_surrogate_key(['ids.artist_key']) }} as artist_id,
    ids.artist_key,
    n.artist_name,
    coalesce(ids.spotify_artist_uri, 'spotify:artist:' || e.spotify_artist_id) as spotify_artist_uri,
    coalesce(
        e.musicbrainz_id,
        case when n.artist_mbid is distinct from e.distrusted_mbid then n.artist_mbid end
    ) as musicbrainz_id,
    e.artist_type,
    e.area_name,
    e.begin_area_name,
    e.active_from,
    e.active_to,
    e.image_url,
    -- Kept when it is no single country (XW Worldwide, XE Europe, SU the Soviet Union ...):
    -- such an artist has a country_name but no location_id.
    e.country_code,
    coalesce(l.country_name, x.area_name) as country_name,
    l.location_id,
    ids.play_count,
    ids.ms_played,
    ids.first_played_at,
    ids.last_played_at
from ids
join names as n using (artist_key)
left join {{ ref('int_artist_enrichment') }} as e using (artist_key)
left join {{ ref('dim_location') }} as l on l.country_code = e.country_code
left join {{ ref('area_codes_without_country') }} as x on x.code = e.country_code
