-- Metric items (issue 12): a deployment item can be measured by Lookout against a
-- Prometheus target. The item keeps its check (the template's, with the placeholders
-- filled in), the target it was bound to when the deployment was created, its run number
-- (a re-run starts a new one) and when its next measurement is due. Every measurement is
-- kept, append-only like the deployment's record.
ALTER TABLE deployment_items
    ADD COLUMN spec      JSONB,
    ADD COLUMN target_id BIGINT REFERENCES targets (id) ON DELETE SET NULL,
    ADD COLUMN target_name TEXT,
    ADD COLUMN run       INTEGER     NOT NULL DEFAULT 0,
    ADD COLUMN next_at   TIMESTAMPTZ;
ALTER TABLE deployment_items ADD CONSTRAINT deployment_items_kind CHECK (kind IN ('manual', 'metric'));
-- The evaluation loop's question: which running items are due.
CREATE INDEX deployment_items_due_idx ON deployment_items (next_at) WHERE state = 'running';

CREATE TABLE deployment_measurements (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id BIGINT      NOT NULL,
    item_id       TEXT        NOT NULL,
    run           INTEGER     NOT NULL,
    at            TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    phase         TEXT        NOT NULL CHECK (phase IN ('successful', 'failed', 'inconclusive')),
    -- The values (at most 20 series: labels and value), the query's error otherwise.
    value         JSONB       NOT NULL DEFAULT '[]',
    series        INTEGER     NOT NULL DEFAULT 0,
    message       TEXT        NOT NULL,
    -- How late the measurement was taken behind its schedule, in milliseconds.
    lag_ms        INTEGER     NOT NULL DEFAULT 0,
    FOREIGN KEY (deployment_id, item_id) REFERENCES deployment_items (deployment_id, item_id)
);
CREATE INDEX deployment_measurements_idx ON deployment_measurements (deployment_id, item_id, id);

CREATE TRIGGER deployment_measurements_append_only
    BEFORE UPDATE OR DELETE ON deployment_measurements
    FOR EACH ROW EXECUTE FUNCTION deployment_events_are_append_only();
CREATE TRIGGER deployment_measurements_no_truncate
    BEFORE TRUNCATE ON deployment_measurements
    FOR EACH STATEMENT EXECUTE FUNCTION deployment_events_are_append_only();
