-- Queue what the warehouse knows and enrichment has not looked up yet, and bring every queued
-- item's priority (its plays) and hints up to date. Run after imports, polls and each batch of
-- enrichment; cheap when nothing changed (rows are only written when a value differs).

-- Spotify: every track with a URI in the plays.
INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, queued_at)
SELECT 'spotify', 'track', substr(spotify_track_uri, 15), min(track_name), count(*), $now
FROM raw.listen_events
WHERE content_kind = 'track' AND duplicate_of IS NULL AND spotify_track_uri LIKE 'spotify:track:%'
GROUP BY substr(spotify_track_uri, 15)
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;

-- Spotify: the primary artist and the album of every track looked up, with the plays of their
-- tracks.
INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, queued_at)
WITH tracks AS (
    SELECT r.entity_key, r.body
    FROM raw.enrichment_responses AS r
    WHERE r.source = 'spotify' AND r.entity = 'track' AND r.status = 200
    QUALIFY row_number() OVER (PARTITION BY r.entity_key ORDER BY r.fetched_at DESC) = 1
),
linked AS (
    SELECT
        t.body ->> '$.artists[0].id' AS artist_id,
        t.body ->> '$.artists[0].name' AS artist_name,
        t.body ->> '$.album.id' AS album_id,
        t.body ->> '$.album.name' AS album_name,
        q.priority
    FROM tracks AS t
    JOIN raw.enrichment_queue AS q
        ON q.source = 'spotify' AND q.entity = 'track' AND q.entity_key = t.entity_key
)
SELECT 'spotify', 'artist', artist_id, min(artist_name), sum(priority), $now
FROM linked WHERE artist_id IS NOT NULL GROUP BY artist_id
UNION ALL
SELECT 'spotify', 'album', album_id, min(album_name), sum(priority), $now
FROM linked WHERE album_id IS NOT NULL GROUP BY album_id
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;

-- MusicBrainz: every artist (magpie's artist key: the normalised name), with a MusicBrainz id
-- when Last.fm gave one and the Spotify artist id when a track lookup found one. An artist not
-- found by name is tried again once a Spotify id is known.
INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, hints, priority, queued_at)
WITH track_artists AS (
    SELECT 'spotify:track:' || r.entity_key AS uri, r.body ->> '$.artists[0].id' AS spotify_artist_id
    FROM raw.enrichment_responses AS r
    WHERE r.source = 'spotify' AND r.entity = 'track' AND r.status = 200
    QUALIFY row_number() OVER (PARTITION BY r.entity_key ORDER BY r.fetched_at DESC) = 1
),
plays AS (
    SELECT split_part(e.identity_key, '|', 1) AS artist_key, e.artist_name, e.artist_mbid, t.spotify_artist_id
    FROM raw.listen_events AS e
    LEFT JOIN track_artists AS t ON t.uri = e.spotify_track_uri
    WHERE e.content_kind = 'track' AND e.duplicate_of IS NULL AND e.identity_key IS NOT NULL
)
SELECT
    'musicbrainz', 'artist', artist_key, mode(artist_name),
    json_object('mbid', min(artist_mbid), 'spotify_artist_id', mode(spotify_artist_id)),
    count(*), $now
FROM plays
WHERE artist_key <> ''
GROUP BY artist_key
ON CONFLICT (source, entity, entity_key) DO UPDATE SET
    priority = excluded.priority,
    label = excluded.label,
    hints = excluded.hints,
    state = CASE
        WHEN raw.enrichment_queue.state = 'not_found'
            AND CAST(raw.enrichment_queue.hints AS VARCHAR) IS DISTINCT FROM CAST(excluded.hints AS VARCHAR)
        THEN 'queued' ELSE raw.enrichment_queue.state END
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
