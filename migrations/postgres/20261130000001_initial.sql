-- The system of record. Shapes follow ../DESIGN.md "Data model"; later
-- migrations extend these tables, never edit this file once merged.

-- Imaging: the DICOM information model's study / series / instance levels
-- (PS3.3 Annex A.1.2). DICOM bytes live in the blob store, keyed by SHA-256.
CREATE TABLE studies (
    study_instance_uid  TEXT PRIMARY KEY,
    patient_id          TEXT,
    patient_name        TEXT,
    patient_birth_date  TEXT,
    patient_sex         TEXT,
    accession_number    TEXT,
    study_date          TEXT,            -- DA, YYYYMMDD as sent
    study_time          TEXT,            -- TM as sent
    study_id            TEXT,
    referring_physician TEXT,
    description         TEXT,
    modalities          JSONB NOT NULL DEFAULT '[]',     -- ModalitiesInStudy, a JSON array of CS values
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
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
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
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
    blob_key            TEXT NOT NULL,   -- SHA-256 of the stored bytes, lower-case hex
    size_bytes          BIGINT NOT NULL,
    decode_status       TEXT NOT NULL DEFAULT 'unknown',  -- ok | failed | unknown
    decode_reason       TEXT,
    attributes          JSONB NOT NULL DEFAULT '{}',      -- DICOM JSON (PS3.18 F.2) of the indexed attributes
    submitted_by        TEXT,            -- API key or user id that stored it (read-back of own submissions)
    received_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX instances_series ON instances (series_instance_uid);
CREATE INDEX instances_study ON instances (study_instance_uid);

-- A SOP Instance UID re-sent with different bytes is refused and recorded here.
CREATE TABLE instance_conflicts (
    id                  BIGSERIAL PRIMARY KEY,
    sop_instance_uid    TEXT NOT NULL,
    stored_blob_key     TEXT NOT NULL,
    rejected_blob_key   TEXT NOT NULL,
    rejected_size_bytes BIGINT NOT NULL,
    received_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Clinical notes, with the note-understanding output kept beside the text.
CREATE TABLE notes (
    id                  UUID PRIMARY KEY,
    patient_id          TEXT,
    accession_number    TEXT,
    study_instance_uid  TEXT,
    note_type           TEXT,
    source_format       TEXT NOT NULL,   -- text/plain | fhir-documentreference | fhir-diagnosticreport | hl7v2-oru | hl7v2-mdm
    source_id           TEXT,            -- the sender's identifier for the document, when given
    authored_at         TIMESTAMPTZ,
    text                TEXT,
    sections            JSONB NOT NULL DEFAULT '[]',
    mentions            JSONB NOT NULL DEFAULT '[]',
    labels              JSONB NOT NULL DEFAULT '{}',
    status              TEXT NOT NULL,   -- analysed | no_text
    submitted_by        TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX notes_patient ON notes (patient_id);
CREATE INDEX notes_accession ON notes (accession_number);

-- A case groups one study and the notes of the same patient and accession.
CREATE TABLE cases (
    id                  UUID PRIMARY KEY,
    patient_id          TEXT,
    accession_number    TEXT,
    study_instance_uid  TEXT,
    status              TEXT NOT NULL,   -- awaiting_image | awaiting_note | queued | predicted | abstained | reviewed
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cases_accession ON cases (accession_number) WHERE accession_number IS NOT NULL;
CREATE INDEX cases_study ON cases (study_instance_uid);

CREATE TABLE case_notes (
    case_id             UUID NOT NULL REFERENCES cases (id),
    note_id             UUID NOT NULL REFERENCES notes (id),
    PRIMARY KEY (case_id, note_id)
);

-- One row per prediction version; never updated in place.
CREATE TABLE predictions (
    id                  UUID PRIMARY KEY,
    case_id             UUID NOT NULL REFERENCES cases (id),
    version             INTEGER NOT NULL,
    status              TEXT NOT NULL,
    packages            JSONB NOT NULL DEFAULT '[]',
    branches            JSONB NOT NULL DEFAULT '{}',
    fused               JSONB NOT NULL DEFAULT '{}',
    abstain             BOOLEAN NOT NULL DEFAULT FALSE,
    reason              TEXT,
    timings             JSONB NOT NULL DEFAULT '{}',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (case_id, version)
);

-- Work queue for inference workers (claimed with FOR UPDATE SKIP LOCKED).
CREATE TABLE inference_jobs (
    id                  UUID PRIMARY KEY,
    case_id             UUID NOT NULL REFERENCES cases (id),
    state               TEXT NOT NULL,   -- queued | running | done | failed
    attempts            INTEGER NOT NULL DEFAULT 0,
    claimed_by          TEXT,
    claimed_at          TIMESTAMPTZ,
    last_error          TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX inference_jobs_queued ON inference_jobs (created_at) WHERE state = 'queued';

CREATE TABLE reviews (
    id                  UUID PRIMARY KEY,
    prediction_id       UUID NOT NULL REFERENCES predictions (id),
    reviewer            TEXT NOT NULL,
    decisions           JSONB NOT NULL,  -- per label: accept | reject | amend (+ amended value)
    comment             TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Identity. Secrets are stored as hashes only.
CREATE TABLE users (
    id                  UUID PRIMARY KEY,
    username            TEXT NOT NULL UNIQUE,
    role                TEXT NOT NULL,   -- clinician | integration | auditor | admin
    password_hash       TEXT NOT NULL,   -- argon2id PHC string
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until        TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY, -- the public key id
    name                TEXT NOT NULL,
    role                TEXT NOT NULL,
    secret_hash         TEXT NOT NULL,
    created_by          TEXT,
    expires_at          TIMESTAMPTZ,
    revoked_at          TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    token_hash          TEXT PRIMARY KEY, -- SHA-256 of the opaque token
    user_id             UUID NOT NULL REFERENCES users (id),
    csrf_token_hash     TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at          TIMESTAMPTZ NOT NULL,
    revoked_at          TIMESTAMPTZ
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE model_packages (
    name                TEXT NOT NULL,
    version             TEXT NOT NULL,
    modality            TEXT NOT NULL,
    sha256              TEXT NOT NULL,    -- of the canonical manifest
    manifest            JSONB NOT NULL,
    installed_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- The audit trail: FHIR R4 AuditEvent fields, hash chained, insert only.
CREATE TABLE audit_events (
    seq                 BIGINT PRIMARY KEY,
    recorded_at         TIMESTAMPTZ NOT NULL,
    type_code           TEXT NOT NULL,
    subtype_code        TEXT,
    action              CHAR(1) NOT NULL CHECK (action IN ('C', 'R', 'U', 'D', 'E')),
    outcome             TEXT NOT NULL,
    outcome_desc        TEXT,
    agent               JSONB NOT NULL,
    source              TEXT NOT NULL,
    entity              JSONB NOT NULL DEFAULT '[]',
    patient_ids         JSONB NOT NULL DEFAULT '[]',     -- JSON array of the Patient IDs the event names
    purpose_of_use      TEXT,
    request_id          TEXT,
    prev_hash           TEXT NOT NULL,
    hash                TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_events_recorded_at ON audit_events (recorded_at);
CREATE INDEX audit_events_patient_ids ON audit_events USING GIN (patient_ids jsonb_path_ops);

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
