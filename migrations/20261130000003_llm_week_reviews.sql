-- The weekly cost review's record (issue 13): the reviewer's notes on an ISO week and who
-- marked it reviewed, when.
CREATE TABLE llm_week_reviews (
    week TEXT PRIMARY KEY CHECK (week ~ '^[0-9]{4}-W[0-9]{2}$'),
    notes TEXT NOT NULL DEFAULT '' CHECK (length(notes) <= 20000),
    reviewed_by TEXT,
    reviewed_at TIMESTAMPTZ,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((reviewed_by IS NULL) = (reviewed_at IS NULL))
);
