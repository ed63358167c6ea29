-- magpie warehouse, migration 4: enrichment. A work queue of entities to look up per source,
-- the raw responses (so models can be re-derived without fetching again), and each source's
-- rate-limit wait, kept across restarts.

CREATE TABLE raw.enrichment_queue (
    source      VARCHAR NOT NULL,   -- spotify | musicbrainz | geo
    entity      VARCHAR NOT NULL,   -- track | artist | album
    entity_key  VARCHAR NOT NULL,   -- a Spotify id (spotify) or magpie's artist key (musicbrainz, geo)
    label       VARCHAR,            -- what a person would call it, for progress and searches
    hints       JSON,               -- what is already known: a MusicBrainz id, a Spotify artist id
    priority    BIGINT NOT NULL DEFAULT 0,   -- plays: the most-played are done first
    state       VARCHAR NOT NULL DEFAULT 'queued',  -- queued | done | not_found | failed | waiting
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  TIMESTAMP,          -- a failed item's next try
    last_error  VARCHAR,
    queued_at   TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    PRIMARY KEY (source, entity, entity_key)
);

-- The latest answer per source/entity/key (a new lookup replaces the old one). `body` is the
-- JSON as the service sent it, or a JSON object magpie derived (geo, search matches); DuckDB's
-- storage compresses it.
CREATE TABLE raw.enrichment_responses (
    source      VARCHAR NOT NULL,
    entity      VARCHAR NOT NULL,   -- track | artist | album | area | url | search | search_match
    entity_key  VARCHAR NOT NULL,
    request     VARCHAR NOT NULL,   -- path and query, without the host
    status      INTEGER NOT NULL,   -- HTTP status (200, 404); 0 for derived rows
    fetched_at  TIMESTAMP NOT NULL,
    body        JSON,
    PRIMARY KEY (source, entity, entity_key)
);

CREATE TABLE raw.enrichment_waits (
    source      VARCHAR PRIMARY KEY,
    until       TIMESTAMP NOT NULL,  -- no requests to this service before this time (429 / 503)
    reason      VARCHAR NOT NULL
);
