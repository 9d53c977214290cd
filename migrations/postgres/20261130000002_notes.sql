-- Note intake over HTTP (POST /notes): what the route keeps beyond the
-- columns of the initial migration.
--
-- no_text_reason: why an accepted note has no text (status = 'no_text'), as
--   the intake's tagged JSON, e.g. {"reason": "pdf_only"}.
-- note_type_system / note_type_display: the coding of notes.note_type (which
--   holds the code), e.g. http://loinc.org, "Diagnostic imaging study".
-- authored_at_precision: how much of authored_at the source gave
--   (year | month | day | minute | second ...).
ALTER TABLE notes ADD COLUMN no_text_reason JSONB;
ALTER TABLE notes ADD COLUMN note_type_system TEXT;
ALTER TABLE notes ADD COLUMN note_type_display TEXT;
ALTER TABLE notes ADD COLUMN authored_at_precision TEXT;
ALTER TABLE notes ADD CONSTRAINT notes_status_known CHECK (status IN ('analysed', 'no_text'));
CREATE INDEX notes_study ON notes (study_instance_uid);
