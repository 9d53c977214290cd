-- What each inference job's models read (issue #18): see the PostgreSQL
-- migration of the same name.
CREATE TABLE model_inputs (
    id                  BLOB PRIMARY KEY,
    case_id             BLOB NOT NULL REFERENCES cases (id),
    prediction_id       BLOB REFERENCES predictions (id),
    image_package       TEXT,
    text_package        TEXT,
    features            TEXT NOT NULL,
    scores              TEXT NOT NULL,
    recorded_at         TEXT NOT NULL
) STRICT;
CREATE INDEX model_inputs_recorded_at ON model_inputs (recorded_at);
CREATE INDEX reviews_created_at ON reviews (created_at);
