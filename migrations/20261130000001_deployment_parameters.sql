-- The template parameters a deployment was opened with (name → value, every parameter of
-- its template version, defaults included): the thresholds its items check are filled in
-- from them, and the page and the export show them.
ALTER TABLE deployments ADD COLUMN parameters JSONB NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(parameters) = 'object');
