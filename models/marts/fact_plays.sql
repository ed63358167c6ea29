{{ config(
    materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert', schema='marts',
    post_hook="delete from {{ this }} where event_id in (select event_id from {{ ref('int_hidden_plays') }})"
) }}
-- One row per counted play, keyed by event_id (the raw event's id: unique, and an integer,
-- where a hashed surrogate key would add a 32-character string per play to write and read).
-- session_id is an integer for the same reason: listener_id * 10^9 + the listener's session
-- number (1, 2, ... in time order), unique across listeners.
-- played_at is the UTC time the play ended; played_at_local the same in the listener's time
-- zone; ms_played its duration (estimated where the source does not give it: see
-- ms_played_estimated).
-- Incremental: the plays int_plays wrote in this build (new ones, and those whose track
-- identity changed) and every play of a session int_sessions numbered again (its session_id
-- may have changed), replaced by event_id. Plays are never removed short of a full refresh
-- (but by the post_hook below),
-- and magpie rebuilds this model in full when the artists' enrichment, the time zone or a
-- seed changes (what else its rows are made of).
-- A listener's own filters leave their hidden plays out (int_hidden_plays; raw events stay).
-- A change of filters rebuilds this model in full (raw.listener_filters is not append-only);
-- the post_hook removes a play that a build without such a change hides (a scrobble without
-- an album that a hidden album now claims, a new spelling of a hidden artist's name), which
-- delete+insert on the plays written cannot.

-- Local time: the zone's offsets as periods [valid_from, valid_to), listed under every year
-- they touch, so each play finds its period by an equi-join on its year (a hash join, which
-- spills within a small memory limit, where an ASOF join over millions of wide rows does not).
with periods as (
    select
        valid_from,
        coalesce(lead(valid_from) over (order by valid_from), timestamp '2200-01-01') as valid_to,
        utc_offset_seconds
    from {{ source('raw', 'tz_offsets') }}
),

period_years as (
    select *, unnest(range(year(valid_from), year(valid_to) + 1)) as year
    from periods
),

{% if is_incremental() %}
renumbered as (
    select listener_id, min(first_ended_at) as renumbered_from
    from {{ ref('int_sessions') }}
    where invocation_id = '{{ invocation_id }}'
    group by listener_id
),

changed as (
    select p.*
    from {{ ref('int_plays') }} as p
    left join renumbered as r using (listener_id)
    where p.invocation_id = '{{ invocation_id }}' or p.ended_at >= r.renumbered_from
),
{% endif %}

plays as (
    select
        p.*,
        p.ended_at + to_seconds(coalesce(z.utc_offset_seconds, 0)) as ended_at_local
    from {% if is_incremental() %}changed{% else %}{{ ref('int_plays') }}{% endif %} as p
    left join period_years as z
        on z.year = year(p.ended_at)
        and p.ended_at >= z.valid_from
        and p.ended_at < z.valid_to
    where not exists (select 1 from {{ ref('int_hidden_plays') }} as h where h.event_id = p.event_id)
)

select
    p.event_id,
    p.listener_id,
    {{ generate_surrogate_key(['p.track_key']) }} as track_id,
    {{ generate_surrogate_key(['p.artist_key']) }} as artist_id,
    {{ generate_surrogate_key(['p.album_key']) }} as album_id,
    cast(year(p.ended_at_local) * 10000 + month(p.ended_at_local) * 100 + day(p.ended_at_local) as integer) as date_id,
    cast(hour(p.ended_at_local) * 60 + minute(p.ended_at_local) as integer) as time_id,
    a.location_id,
    cast(s.listener_id as bigint) * 1000000000 + s.session_number as session_id,
    p.ended_at as played_at,
    p.ended_at_local as played_at_local,
    p.ms_played,
    p.ms_played_estimated,
    p.skipped,
    p.shuffle,
    p.platform,
    p.conn_country,
    p.reason_start,
    p.reason_end,
    p.source_kind
from plays as p
-- The play's session: the one of its listener whose plays end, on the play's day, around it
-- (each session listed under every day it touches, so that this is an equi-join on the day).
left join (
    select
        *,
        unnest(generate_series(cast(first_ended_at as date), cast(last_ended_at as date), interval 1 day))::date as day
    from {{ ref('int_sessions') }}
) as s
    on s.listener_id = p.listener_id
    and s.day = cast(p.ended_at as date)
    and p.ended_at between s.first_ended_at and s.last_ended_at
left join {{ ref('dim_artist') }} as a using (artist_key)
