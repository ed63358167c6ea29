-- What each incremental model was last built from (issue 28): a fingerprint of its SQL, its
-- ancestors' SQL, the macros, the vars, the seeds it reads and the contents of the sources it
-- reads that are not append-only. A model whose fingerprint changed is rebuilt in full.
CREATE TABLE meta.incremental_state (
    model       VARCHAR PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    built_at    TIMESTAMP NOT NULL
);
