-- Probe items (issue 12): Lookout runs a probe on a bound target; the run is the item's
-- evidence (the current or last one, kept when the run is).
ALTER TABLE deployment_items DROP CONSTRAINT deployment_items_kind;
ALTER TABLE deployment_items ADD CONSTRAINT deployment_items_kind CHECK (kind IN ('manual', 'metric', 'probe'));
ALTER TABLE deployment_items ADD COLUMN probe_run_id BIGINT REFERENCES probe_runs (id) ON DELETE SET NULL;
