-- Note intake over HTTP (POST /notes): what the route keeps beyond the
-- columns of the initial migration. See the PostgreSQL twin for the meaning
-- of each column. SQLite cannot add a CHECK constraint to an existing table;
-- the store writes only 'analysed' and 'no_text' into notes.status.
ALTER TABLE notes ADD COLUMN no_text_reason TEXT;
ALTER TABLE notes ADD COLUMN note_type_system TEXT;
ALTER TABLE notes ADD COLUMN note_type_display TEXT;
ALTER TABLE notes ADD COLUMN authored_at_precision TEXT;
CREATE INDEX notes_study ON notes (study_instance_uid);
