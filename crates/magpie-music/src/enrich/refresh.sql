-- Queue what the warehouse knows and enrichment has not looked up yet, and bring every queued
-- item's priority (its plays) and hints up to date. Run after imports, polls and each batch of
-- enrichment. Cheap when nothing changed (rows are only written when a value differs).

-- Spotify: every track with a URI in the plays.
INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, queued_at)
SELECT 'spotify', 'track', substr(spotify_track_uri, 15), min(track_name), count(*), $now
FROM raw.listen_events
WHERE content_kind = 'track' AND duplicate_of IS NULL AND spotify_track_uri LIKE 'spotify:track:%'
GROUP BY substr(spotify_track_uri, 15)
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;

-- What each track looked up links to, read out of the JSON once, by one json_extract_string
-- call (each JSON function keeps its own large buffers: one per field does not fit a small
-- memory limit).
CREATE OR REPLACE TEMP TABLE enrichment_track_links AS
SELECT
    'spotify:track:' || entity_key AS uri,
    entity_key AS track_id,
    v[1] AS artist_id,
    v[2] AS artist_name,
    v[3] AS album_id,
    v[4] AS album_name
FROM (
    SELECT entity_key, json_extract_string(body, ['$.artists[0].id', '$.artists[0].name', '$.album.id', '$.album.name']) AS v
    FROM raw.enrichment_responses
    WHERE source = 'spotify' AND entity = 'track' AND status = 200
);

-- Spotify: the primary artist and the album of every track looked up, with the plays of their
-- tracks. (Two statements: DuckDB 2.0 reserves far more memory for an upsert over a UNION.)

INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, queued_at)
SELECT 'spotify', 'artist', l.artist_id, min(l.artist_name), sum(q.priority), $now
FROM enrichment_track_links AS l
JOIN raw.enrichment_queue AS q ON q.source = 'spotify' AND q.entity = 'track' AND q.entity_key = l.track_id
WHERE l.artist_id IS NOT NULL GROUP BY l.artist_id
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;

INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, queued_at)
SELECT 'spotify', 'album', l.album_id, min(l.album_name), sum(q.priority), $now
FROM enrichment_track_links AS l
JOIN raw.enrichment_queue AS q ON q.source = 'spotify' AND q.entity = 'track' AND q.entity_key = l.track_id
WHERE l.album_id IS NOT NULL GROUP BY l.album_id
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;

-- MusicBrainz: every artist (magpie's artist key: the normalised name), with a MusicBrainz id
-- when the source gave one (Last.fm, ListenBrainz: a claim the lookup checks), the Spotify
-- artist id when a track lookup found one, and the most played recording MBID a source gave
-- (its artist credit names the artist when no artist MBID can be trusted). Where the key merges several spellings, the MBID is
-- the most played spelling's (then its most frequent MBID; ties: the smallest), as is the
-- label (the name searched for). One pass over the plays, weighed per spelling, MBID and
-- Spotify id (a CTE read twice would be materialised: a copy of every play). An artist not
-- found is tried again once its hints change; one found is looked up again when the supplied
-- MBID changes.
INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, hints, priority, queued_at)
WITH combos AS (
    SELECT
        split_part(e.identity_key, '|', 1) AS artist_key, e.artist_name, e.artist_mbid,
        e.track_mbid, t.artist_id AS spotify_artist_id, count(*) AS n
    FROM raw.listen_events AS e
    LEFT JOIN enrichment_track_links AS t ON t.uri = e.spotify_track_uri
    WHERE e.content_kind = 'track' AND e.duplicate_of IS NULL AND e.identity_key IS NOT NULL
    GROUP BY ALL
),
weighed AS (
    SELECT
        *,
        sum(n) OVER (PARTITION BY artist_key, artist_name) AS spelling_n,
        sum(n) OVER (PARTITION BY artist_key, artist_name, artist_mbid) AS claim_n,
        sum(n) OVER (PARTITION BY artist_key, spotify_artist_id) AS spotify_n
    FROM combos
    WHERE artist_key <> ''
)
SELECT
    'musicbrainz', 'artist', artist_key,
    first(artist_name ORDER BY spelling_n DESC, artist_name),
    json_object(
        'mbid', first(artist_mbid ORDER BY spelling_n DESC, claim_n DESC, artist_mbid) FILTER (WHERE artist_mbid IS NOT NULL),
        'spotify_artist_id', first(spotify_artist_id ORDER BY spotify_n DESC, spotify_artist_id) FILTER (WHERE spotify_artist_id IS NOT NULL),
        'recording_mbid', first(track_mbid ORDER BY n DESC, track_mbid) FILTER (WHERE track_mbid IS NOT NULL)
    ),
    sum(n), $now
FROM weighed
GROUP BY artist_key
ON CONFLICT (source, entity, entity_key) DO UPDATE SET
    priority = excluded.priority,
    label = excluded.label,
    hints = excluded.hints,
    state = CASE
        WHEN raw.enrichment_queue.state = 'not_found'
            AND CAST(raw.enrichment_queue.hints AS VARCHAR) IS DISTINCT FROM CAST(excluded.hints AS VARCHAR)
        THEN 'queued'
        WHEN raw.enrichment_queue.state = 'done'
            AND (raw.enrichment_queue.hints ->> '$.mbid') IS DISTINCT FROM (excluded.hints ->> '$.mbid')
        THEN 'queued'
        ELSE raw.enrichment_queue.state END
WHERE raw.enrichment_queue.priority <> excluded.priority
    OR raw.enrichment_queue.label IS DISTINCT FROM excluded.label
    OR CAST(raw.enrichment_queue.hints AS VARCHAR) IS DISTINCT FROM CAST(excluded.hints AS VARCHAR);

-- Geography: every artist MusicBrainz found.
INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, queued_at)
SELECT 'geo', 'artist', entity_key, label, priority, $now
FROM raw.enrichment_queue
WHERE source = 'musicbrainz' AND entity = 'artist' AND state = 'done'
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;

DROP TABLE enrichment_track_links;
