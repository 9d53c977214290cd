-- The blob collector (`fusion blobs gc`, issue #14 finding 8) asks which
-- blob keys rows still refer to, a page of keys at a time.
CREATE INDEX instances_blob_key ON instances (blob_key);
CREATE INDEX instance_conflicts_stored_blob_key ON instance_conflicts (stored_blob_key);
CREATE INDEX instance_conflicts_rejected_blob_key ON instance_conflicts (rejected_blob_key);
