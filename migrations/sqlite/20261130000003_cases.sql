-- Cases, prediction versions, reviews and the inference queue. See the
-- PostgreSQL twin for the meaning of each column. SQLite cannot add a CHECK
-- constraint to an existing table; the store writes only the known values.
CREATE UNIQUE INDEX cases_study_without_accession ON cases (study_instance_uid)
    WHERE accession_number IS NULL AND study_instance_uid IS NOT NULL;
CREATE INDEX cases_patient ON cases (patient_id);
CREATE INDEX cases_updated_at ON cases (updated_at);

CREATE INDEX case_notes_note ON case_notes (note_id);

ALTER TABLE predictions ADD COLUMN abstain_reasons TEXT NOT NULL DEFAULT '[]';
ALTER TABLE predictions ADD COLUMN inputs TEXT NOT NULL DEFAULT '{}';
ALTER TABLE predictions ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';
ALTER TABLE predictions ADD COLUMN refer INTEGER NOT NULL DEFAULT 0;
ALTER TABLE predictions ADD COLUMN job_id BLOB;

ALTER TABLE inference_jobs ADD COLUMN finished_at TEXT;
CREATE UNIQUE INDEX inference_jobs_one_queued ON inference_jobs (case_id) WHERE state = 'queued';
CREATE INDEX inference_jobs_case ON inference_jobs (case_id);
CREATE INDEX inference_jobs_running ON inference_jobs (claimed_at) WHERE state = 'running';

CREATE INDEX reviews_prediction ON reviews (prediction_id);
