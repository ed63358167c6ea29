-- magpie warehouse, migration 5: the scheduler's run history (what Prefect kept in Postgres).

CREATE SEQUENCE meta.flow_run_seq START 1;

CREATE TABLE meta.flow_runs (
    run_id        BIGINT PRIMARY KEY,
    flow          VARCHAR NOT NULL,
    state         VARCHAR NOT NULL,   -- Scheduled Pending Running Retrying Completed Failed Cancelled Crashed Late
    trigger       VARCHAR NOT NULL,   -- schedule | late | manual | cli | rerun
    scheduled_for TIMESTAMP,          -- the slot a scheduled run was for (UTC)
    created_at    TIMESTAMP NOT NULL,
    started_at    TIMESTAMP,
    ended_at      TIMESTAMP,
    duration_ms   BIGINT,
    parameters    JSON,
    error         VARCHAR
);

CREATE TABLE meta.task_runs (
    run_id      BIGINT NOT NULL,
    task        VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    state       VARCHAR NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  TIMESTAMP,
    ended_at    TIMESTAMP,
    duration_ms BIGINT,
    error       VARCHAR,
    PRIMARY KEY (run_id, task)
);

-- A run's log lines (at most a few hundred per run).
CREATE TABLE meta.run_logs (
    run_id  BIGINT NOT NULL,
    logged_at TIMESTAMP NOT NULL,
    level   VARCHAR NOT NULL,
    task    VARCHAR,
    message VARCHAR NOT NULL
);

-- Per flow: paused or not, and the last schedule slot handled (so a restart knows what it missed).
CREATE TABLE meta.flow_state (
    flow      VARCHAR PRIMARY KEY,
    paused    BOOLEAN NOT NULL DEFAULT false,
    last_slot TIMESTAMP
);
