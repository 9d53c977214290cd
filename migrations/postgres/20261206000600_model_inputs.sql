-- What each inference job's models read (issue #18): the header attributes
-- the applicability gate reads, banded and without identifiers, and each
-- branch's scores, per package. Unlabelled input drift is measured on these
-- rows; they are written for every job, also when no modality was usable
-- (then prediction_id is NULL), so a stream of out-of-scope studies shows.
CREATE TABLE model_inputs (
    id                  UUID PRIMARY KEY,
    case_id             UUID NOT NULL REFERENCES cases (id),
    prediction_id       UUID REFERENCES predictions (id),
    image_package       TEXT,
    text_package        TEXT,
    features            JSONB NOT NULL,
    scores              JSONB NOT NULL,
    recorded_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX model_inputs_recorded_at ON model_inputs (recorded_at);
CREATE INDEX reviews_created_at ON reviews (created_at);
