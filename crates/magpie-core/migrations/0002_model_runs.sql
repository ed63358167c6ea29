-- magpie warehouse, migration 2: the models runner's history (one row per seed, model and test
-- of each `magpie build`), for the UI's lineage and freshness views.

CREATE SCHEMA meta;
CREATE SEQUENCE meta.model_run_seq START 1;

CREATE TABLE meta.model_runs (
    run_id      BIGINT NOT NULL,
    node        VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,  -- seed | model | test
    status      VARCHAR NOT NULL,  -- success | fail | error | skipped
    rows        BIGINT,
    duration_ms BIGINT NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    error       VARCHAR
);
