-- The embedded default: the same tables as migrations/postgres, in SQLite's
-- types. Timestamps are RFC 3339 text, UUIDs are 16-byte blobs (sqlx's
-- encoding), JSON is text, arrays are JSON arrays. Never edit this file once merged; add a migration.

CREATE TABLE studies (
    study_instance_uid  TEXT PRIMARY KEY,
    patient_id          TEXT,
    patient_name        TEXT,
    patient_birth_date  TEXT,
    patient_sex         TEXT,
    accession_number    TEXT,
    study_date          TEXT,
    study_time          TEXT,
    study_id            TEXT,
    referring_physician TEXT,
    description         TEXT,
    modalities          TEXT NOT NULL DEFAULT '[]',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
) STRICT;
CREATE INDEX studies_patient_id ON studies (patient_id);
CREATE INDEX studies_accession_number ON studies (accession_number);
CREATE INDEX studies_study_date ON studies (study_date);

CREATE TABLE series (
    series_instance_uid TEXT PRIMARY KEY,
    study_instance_uid  TEXT NOT NULL REFERENCES studies (study_instance_uid),
    modality            TEXT,
    body_part           TEXT,
    series_number       INTEGER,
    description         TEXT,
    created_at          TEXT NOT NULL
) STRICT;
CREATE INDEX series_study ON series (study_instance_uid);

CREATE TABLE instances (
    sop_instance_uid    TEXT PRIMARY KEY,
    series_instance_uid TEXT NOT NULL REFERENCES series (series_instance_uid),
    study_instance_uid  TEXT NOT NULL REFERENCES studies (study_instance_uid),
    sop_class_uid       TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    instance_number     INTEGER,
    rows                INTEGER,
    columns             INTEGER,
    frames              INTEGER,
    blob_key            TEXT NOT NULL,
    size_bytes          INTEGER NOT NULL,
    decode_status       TEXT NOT NULL DEFAULT 'unknown',
    decode_reason       TEXT,
    attributes          TEXT NOT NULL DEFAULT '{}',
    submitted_by        TEXT,            -- API key or user id that stored it (read-back of own submissions)
    received_at         TEXT NOT NULL
) STRICT;
CREATE INDEX instances_series ON instances (series_instance_uid);
CREATE INDEX instances_study ON instances (study_instance_uid);

CREATE TABLE instance_conflicts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    sop_instance_uid    TEXT NOT NULL,
    stored_blob_key     TEXT NOT NULL,
    rejected_blob_key   TEXT NOT NULL,
    rejected_size_bytes INTEGER NOT NULL,
    received_at         TEXT NOT NULL
) STRICT;

CREATE TABLE notes (
    id                  BLOB PRIMARY KEY,   -- UUID, 16 bytes
    patient_id          TEXT,
    accession_number    TEXT,
    study_instance_uid  TEXT,
    note_type           TEXT,
    source_format       TEXT NOT NULL,
    source_id           TEXT,
    authored_at         TEXT,
    text                TEXT,
    sections            TEXT NOT NULL DEFAULT '[]',
    mentions            TEXT NOT NULL DEFAULT '[]',
    labels              TEXT NOT NULL DEFAULT '{}',
    status              TEXT NOT NULL,
    submitted_by        TEXT,
    created_at          TEXT NOT NULL
) STRICT;
CREATE INDEX notes_patient ON notes (patient_id);
CREATE INDEX notes_accession ON notes (accession_number);

CREATE TABLE cases (
    id                  BLOB PRIMARY KEY,
    patient_id          TEXT,
    accession_number    TEXT,
    study_instance_uid  TEXT,
    status              TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX cases_accession ON cases (accession_number) WHERE accession_number IS NOT NULL;
CREATE INDEX cases_study ON cases (study_instance_uid);

CREATE TABLE case_notes (
    case_id             BLOB NOT NULL REFERENCES cases (id),
    note_id             BLOB NOT NULL REFERENCES notes (id),
    PRIMARY KEY (case_id, note_id)
) STRICT;

CREATE TABLE predictions (
    id                  BLOB PRIMARY KEY,
    case_id             BLOB NOT NULL REFERENCES cases (id),
    version             INTEGER NOT NULL,
    status              TEXT NOT NULL,
    packages            TEXT NOT NULL DEFAULT '[]',
    branches            TEXT NOT NULL DEFAULT '{}',
    fused               TEXT NOT NULL DEFAULT '{}',
    abstain             INTEGER NOT NULL DEFAULT 0,
    reason              TEXT,
    timings             TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    UNIQUE (case_id, version)
) STRICT;

CREATE TABLE inference_jobs (
    id                  BLOB PRIMARY KEY,
    case_id             BLOB NOT NULL REFERENCES cases (id),
    state               TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    claimed_by          TEXT,
    claimed_at          TEXT,
    last_error          TEXT,
    created_at          TEXT NOT NULL
) STRICT;
CREATE INDEX inference_jobs_queued ON inference_jobs (created_at) WHERE state = 'queued';

CREATE TABLE reviews (
    id                  BLOB PRIMARY KEY,
    prediction_id       BLOB NOT NULL REFERENCES predictions (id),
    reviewer            TEXT NOT NULL,
    decisions           TEXT NOT NULL,
    comment             TEXT,
    created_at          TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id                  BLOB PRIMARY KEY,
    username            TEXT NOT NULL UNIQUE,
    role                TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    disabled            INTEGER NOT NULL DEFAULT 0,
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until        TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    role                TEXT NOT NULL,
    secret_hash         TEXT NOT NULL,
    created_by          TEXT,
    expires_at          TEXT,
    revoked_at          TEXT,
    created_at          TEXT NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash          TEXT PRIMARY KEY,
    user_id             BLOB NOT NULL REFERENCES users (id),
    csrf_token_hash     TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    last_seen_at        TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    revoked_at          TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE model_packages (
    name                TEXT NOT NULL,
    version             TEXT NOT NULL,
    modality            TEXT NOT NULL,
    sha256              TEXT NOT NULL,
    manifest            TEXT NOT NULL,
    installed_at        TEXT NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE audit_events (
    seq                 INTEGER PRIMARY KEY,
    recorded_at         TEXT NOT NULL,
    type_code           TEXT NOT NULL,
    subtype_code        TEXT,
    action              TEXT NOT NULL CHECK (action IN ('C', 'R', 'U', 'D', 'E')),
    outcome             TEXT NOT NULL,
    outcome_desc        TEXT,
    agent               TEXT NOT NULL,
    source              TEXT NOT NULL,
    entity              TEXT NOT NULL DEFAULT '[]',
    patient_ids         TEXT NOT NULL DEFAULT '[]',
    purpose_of_use      TEXT,
    request_id          TEXT,
    prev_hash           TEXT NOT NULL,
    hash                TEXT NOT NULL UNIQUE
) STRICT;
CREATE INDEX audit_events_recorded_at ON audit_events (recorded_at);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;
