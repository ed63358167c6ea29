-- magpie warehouse, migration 3: Spotify Web API polling. Tokens are not here (they live in
-- DATA_DIR/secrets with mode 0600); this is the poller's bookkeeping per listener, and the
-- windows in which polling may have missed plays.

CREATE TABLE raw.spotify_poll_state (
    listener_id       INTEGER PRIMARY KEY,
    cursor_ms         BIGINT,      -- `after` of the next poll: end time (unix ms) of the newest play seen
    last_poll_at      TIMESTAMP,
    next_poll_at      TIMESTAMP,   -- sooner than the interval after a full page
    retry_after_until TIMESTAMP,   -- a 429's Retry-After, kept across restarts
    failures          INTEGER NOT NULL DEFAULT 0,  -- consecutive failed polls
    status            VARCHAR NOT NULL DEFAULT 'ok',  -- ok | reconnect_needed
    last_error        VARCHAR
);

CREATE TABLE raw.spotify_gaps (
    listener_id INTEGER NOT NULL,
    gap_from    TIMESTAMP NOT NULL,  -- the newest play known before the poll
    gap_to      TIMESTAMP NOT NULL,  -- the oldest play of the full page
    found_at    TIMESTAMP NOT NULL,
    reason      VARCHAR NOT NULL     -- full_page | first_poll
);
