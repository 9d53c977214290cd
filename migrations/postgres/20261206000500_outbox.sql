-- Transactional outbox (issue #17): one row per delivery of a prediction
-- version (or of its review) to one destination, written in the same
-- transaction as the prediction or review. Targets: `local` (the DICOM SR
-- stored in our own archive), `dicomweb` (STOW-RS to the configured PACS),
-- `fhir` (a FHIR R4 transaction Bundle to the configured endpoint).
-- A sender claims due rows (FOR UPDATE SKIP LOCKED), leases them by moving
-- next_attempt_at, and records the destination's answer.
CREATE TABLE outbox (
    id                  UUID PRIMARY KEY,
    prediction_id       UUID NOT NULL REFERENCES predictions (id),
    review_id           UUID REFERENCES reviews (id),
    case_id             UUID NOT NULL REFERENCES cases (id),
    target              TEXT NOT NULL,   -- local | dicomweb | fhir
    state               TEXT NOT NULL,   -- pending | delivered | failed
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ NOT NULL,
    last_status         INTEGER,
    last_error          TEXT,
    sop_instance_uid    TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    delivered_at        TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_prediction ON outbox (prediction_id);
CREATE UNIQUE INDEX outbox_once ON outbox (prediction_id, COALESCE(review_id, prediction_id), target);
