{{ config(materialized='table', schema='marts') }}
-- Countries with region and a representative point, from the countries seed (so the world map
-- works offline); artists point here once enrichment knows their country.
select
    {{ generate_surrogate_key(['iso2']) }} as location_id,
    iso2 as country_code,
    iso3,
    country_name,
    region,
    subregion,
    latitude,
    longitude
from {{ ref('countries') }}
