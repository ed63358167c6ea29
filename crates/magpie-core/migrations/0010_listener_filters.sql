-- magpie warehouse, migration 10: a listener's own filters (issue 29, part 4). Artists, albums
-- or genres a listener hides from their stats (a family account's children's music, a
-- partner's podcasts) without deleting any event: the models leave the matching plays out of
-- fact_plays, the dimensions' totals and every mart built on them (int_hidden_plays lists
-- them); raw.listen_events keeps every event. Not append-only for the models: a change here
-- rebuilds the incremental models in full.
--
-- `value` is the name as the listener gave it (an artist or album name as shown, or a genre);
-- the models match it case- and accent-insensitively (normalise_name). magpie's library also
-- refuses a second filter that matches the same (listener, kind) name in another case.

CREATE TABLE raw.listener_filters (
    listener_id INTEGER NOT NULL,          -- listeners.listener_id
    kind        VARCHAR NOT NULL CHECK (kind IN ('artist', 'album', 'genre')),
    value       VARCHAR NOT NULL CHECK (length(trim(value)) > 0),
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- UTC
    PRIMARY KEY (listener_id, kind, value)
);
