-- magpie warehouse, migration 7: question alerts' state (issue 25). The questions themselves
-- are files in DATA_DIR/questions/; this keeps, per question with an alert, when the
-- question-alerts flow last ran it (so a restart knows whether it is due), when it last fired,
-- and the last problem (a broken query, a missing column), so the same one is not reported
-- every minute.

CREATE TABLE meta.question_alerts (
    slug          VARCHAR PRIMARY KEY,
    last_run_at   TIMESTAMP,          -- UTC
    last_fired_at TIMESTAMP,          -- UTC
    last_error    VARCHAR
);
