-- Transactional outbox (issue #17): see migrations/postgres for the design.
CREATE TABLE outbox (
    id                  BLOB PRIMARY KEY,
    prediction_id       BLOB NOT NULL REFERENCES predictions (id),
    review_id           BLOB REFERENCES reviews (id),
    case_id             BLOB NOT NULL REFERENCES cases (id),
    target              TEXT NOT NULL,
    state               TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT NOT NULL,
    last_status         INTEGER,
    last_error          TEXT,
    sop_instance_uid    TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    delivered_at        TEXT
) STRICT;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_prediction ON outbox (prediction_id);
CREATE UNIQUE INDEX outbox_once ON outbox (prediction_id, COALESCE(review_id, prediction_id), target);
