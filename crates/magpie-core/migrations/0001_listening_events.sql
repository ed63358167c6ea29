-- magpie warehouse, migration 1: listeners, import batches and the raw listening events.
-- Raw tables keep every event as its source gave it (bar IP addresses and user agents, which
-- are never stored), with provenance; deciding what counts as a play is the models' job.

CREATE TABLE listeners (
    listener_id INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL UNIQUE,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
INSERT INTO listeners (listener_id, name) VALUES (1, 'default');

CREATE SCHEMA raw;

CREATE SEQUENCE raw.import_batch_seq START 1;

-- One row per file an import looked at: completed (its events are in raw.listen_events),
-- or failed (nothing of it was kept; `error` says why).
CREATE TABLE raw.import_batches (
    batch_id        BIGINT PRIMARY KEY,
    listener_id     INTEGER NOT NULL,
    source_path     VARCHAR NOT NULL,  -- as given; `archive.zip!member.json` inside a zip
    file_name       VARCHAR NOT NULL,
    content_sha256  VARCHAR NOT NULL,
    format          VARCHAR,           -- extended_json, endsong_json, basic_json, lastfm_csv, lastfm_json, api_json
    byte_size       BIGINT NOT NULL,
    status          VARCHAR NOT NULL,  -- completed | failed
    events_read     BIGINT NOT NULL DEFAULT 0,
    imported        BIGINT NOT NULL DEFAULT 0,
    duplicates      BIGINT NOT NULL DEFAULT 0,
    skipped         BIGINT NOT NULL DEFAULT 0,
    skipped_reasons JSON,
    error           VARCHAR,
    started_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP NOT NULL
);

CREATE SEQUENCE raw.listen_event_seq START 1;

-- Every listening event from every source. Times are UTC.
CREATE TABLE raw.listen_events (
    event_id            BIGINT NOT NULL,
    listener_id         INTEGER NOT NULL,
    batch_id            BIGINT NOT NULL,
    source_kind         VARCHAR NOT NULL,  -- spotify_extended | spotify_basic | lastfm | spotify_api
    source_format       VARCHAR NOT NULL,  -- extended_json | endsong_json | basic_json | lastfm_csv | lastfm_json | api_json
    source_position     BIGINT NOT NULL,   -- record number in the file (1-based); CSV: line number
    content_kind        VARCHAR NOT NULL,  -- track | episode | audiobook | video | unknown
    ended_at            TIMESTAMP,         -- end of the play; NULL where the source gives only the start
    started_at          TIMESTAMP,         -- start of the play (ended_at - ms_played where derived)
    ms_played           BIGINT,
    track_name          VARCHAR,
    artist_name         VARCHAR,
    album_name          VARCHAR,
    spotify_track_uri   VARCHAR,
    spotify_artist_uri  VARCHAR,           -- Web API only: first artist
    spotify_album_uri   VARCHAR,           -- Web API only
    track_duration_ms   BIGINT,            -- Web API only: the track's length (ms_played is unknown there)
    context_uri         VARCHAR,           -- Web API only: playlist/album the play came from
    episode_name        VARCHAR,
    episode_show_name   VARCHAR,
    spotify_episode_uri VARCHAR,
    audiobook_title         VARCHAR,
    audiobook_uri           VARCHAR,
    audiobook_chapter_uri   VARCHAR,
    audiobook_chapter_title VARCHAR,
    platform            VARCHAR,
    conn_country        VARCHAR,
    reason_start        VARCHAR,
    reason_end          VARCHAR,
    shuffle             BOOLEAN,
    skipped             BOOLEAN,
    offline             BOOLEAN,
    offline_timestamp   BIGINT,
    incognito_mode      BOOLEAN,
    source_username     VARCHAR,
    artist_mbid         VARCHAR,
    album_mbid          VARCHAR,
    track_mbid          VARCHAR,
    source_time_text    VARCHAR,           -- the time exactly as the source wrote it
    extra_fields        JSON,              -- fields this version of magpie does not know yet
    identity_key        VARCHAR NOT NULL,  -- normalised "artist|track" (or show|episode) for dedupe
    fingerprint         UBIGINT NOT NULL,  -- hash of the identifying fields: exact duplicates
    duplicate_of        BIGINT             -- the same listen, seen first from another source
);
