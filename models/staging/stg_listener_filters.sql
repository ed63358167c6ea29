{{ config(materialized='view', schema='staging') }}
-- A listener's own filters (`magpie listener filter add`): one row per artist, album or genre
-- hidden from that listener's stats, with the name normalised as the models compare names
-- (lower case, accents stripped, trimmed).
select
    listener_id,
    kind,
    value,
    {{ normalise_name('value') }} as value_normalised,
    created_at
from {{ source('raw', 'listener_filters') }}
where kind in ('artist', 'album', 'genre')
