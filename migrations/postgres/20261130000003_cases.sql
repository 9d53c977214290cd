-- Cases, prediction versions, reviews and the inference queue: what the
-- case workflow keeps beyond the columns of the initial migration.
--
-- cases.status gains no_modality (neither modality usable: no prediction).
-- A case without an accession number is keyed by its study: one such case
--   per Study Instance UID.
-- predictions: abstain_reasons (JSON array of strings), inputs (the study,
--   instances and notes used), findings (top fused labels, for lists),
--   refer (uncertain, conflicting or abstained: a clinician looks first),
--   job_id (the job that produced the version).
-- inference_jobs: at most one queued job per case (enqueue deduplicates on
--   it), finished_at.
ALTER TABLE cases ADD CONSTRAINT cases_status_known CHECK (status IN
    ('awaiting_image', 'awaiting_note', 'queued', 'predicted', 'abstained', 'no_modality', 'reviewed'));
CREATE UNIQUE INDEX cases_study_without_accession ON cases (study_instance_uid)
    WHERE accession_number IS NULL AND study_instance_uid IS NOT NULL;
CREATE INDEX cases_patient ON cases (patient_id);
CREATE INDEX cases_updated_at ON cases (updated_at);

CREATE INDEX case_notes_note ON case_notes (note_id);

ALTER TABLE predictions ADD COLUMN abstain_reasons JSONB NOT NULL DEFAULT '[]';
ALTER TABLE predictions ADD COLUMN inputs JSONB NOT NULL DEFAULT '{}';
ALTER TABLE predictions ADD COLUMN findings JSONB NOT NULL DEFAULT '[]';
ALTER TABLE predictions ADD COLUMN refer BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE predictions ADD COLUMN job_id UUID;
ALTER TABLE predictions ADD CONSTRAINT predictions_status_known CHECK (status IN ('predicted', 'abstained'));

ALTER TABLE inference_jobs ADD COLUMN finished_at TIMESTAMPTZ;
ALTER TABLE inference_jobs ADD CONSTRAINT inference_jobs_state_known CHECK (state IN ('queued', 'running', 'done', 'failed'));
CREATE UNIQUE INDEX inference_jobs_one_queued ON inference_jobs (case_id) WHERE state = 'queued';
CREATE INDEX inference_jobs_case ON inference_jobs (case_id);
CREATE INDEX inference_jobs_running ON inference_jobs (claimed_at) WHERE state = 'running';

CREATE INDEX reviews_prediction ON reviews (prediction_id);
