-- With `enrichment.spotify_search` on: queue a Spotify search for every track that no play
-- gave a URI for (basic export, Last.fm), and queue the tracks those searches matched.
INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, hints, priority, queued_at)
SELECT
    'spotify', 'search', identity_key,
    min(artist_name) || ' - ' || min(track_name),
    json_object('artist', min(artist_name), 'track', min(track_name)),
    count(*), $now
FROM raw.listen_events
WHERE content_kind = 'track' AND duplicate_of IS NULL AND identity_key IS NOT NULL
    AND artist_name IS NOT NULL AND track_name IS NOT NULL
    AND identity_key NOT IN (
        SELECT identity_key FROM raw.listen_events
        WHERE spotify_track_uri IS NOT NULL AND identity_key IS NOT NULL
    )
GROUP BY identity_key
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;

INSERT INTO raw.enrichment_queue (source, entity, entity_key, label, priority, queued_at)
SELECT 'spotify', 'track', m.body ->> '$.spotify_track_id', min(q.label), sum(q.priority), $now
FROM raw.enrichment_responses AS m
JOIN raw.enrichment_queue AS q
    ON q.source = 'spotify' AND q.entity = 'search' AND q.entity_key = m.entity_key
WHERE m.source = 'spotify' AND m.entity = 'search_match' AND m.status = 0
GROUP BY m.body ->> '$.spotify_track_id'
ON CONFLICT (source, entity, entity_key) DO UPDATE SET priority = excluded.priority
WHERE raw.enrichment_queue.priority <> excluded.priority;
