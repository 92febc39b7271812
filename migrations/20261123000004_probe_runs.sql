-- Probe runs: who ran which probe on which target with which parameters, when, how long,
-- and how it ended. Progress (steps) is written while the run goes; the NOTIFY trigger
-- lets every replica push it to the browsers watching the run.

CREATE TYPE probe_run_status AS ENUM ('running', 'ok', 'failed', 'cancelled', 'timed_out');

CREATE TABLE probe_runs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Kept when the target is deleted (history stays readable by name).
    target_id     BIGINT REFERENCES targets (id) ON DELETE SET NULL,
    target_name   TEXT        NOT NULL,
    target_kind   target_kind NOT NULL,
    probe         TEXT        NOT NULL,
    params        JSONB       NOT NULL DEFAULT '{}'::jsonb,
    incident_id   BIGINT REFERENCES incidents (id),
    started_by    TEXT        NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    duration_ms   BIGINT,
    status        probe_run_status NOT NULL DEFAULT 'running',
    error         TEXT,
    -- [{name, status, elapsed_ms, detail}]
    steps         JSONB       NOT NULL DEFAULT '[]'::jsonb,
    commands      BIGINT      NOT NULL DEFAULT 0,
    finding_count INT         NOT NULL DEFAULT 0,
    -- Raw evidence (INFO text, settings), capped by the probe framework at 64 KiB.
    evidence      JSONB       NOT NULL DEFAULT '{}'::jsonb,
    cancel_requested_at TIMESTAMPTZ,
    -- Refreshed by the replica running it; a run whose heartbeat stops is marked failed.
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT probe_runs_finished CHECK ((status = 'running') = (finished_at IS NULL)),
    CONSTRAINT probe_runs_evidence_size CHECK (pg_column_size(evidence) <= 200000)
);
CREATE INDEX probe_runs_target_idx ON probe_runs (target_id, id DESC);
CREATE INDEX probe_runs_incident_idx ON probe_runs (incident_id, id DESC) WHERE incident_id IS NOT NULL;
CREATE INDEX probe_runs_running_idx ON probe_runs (target_id) WHERE status = 'running';

CREATE INDEX findings_probe_run_idx ON findings (probe_run_id) WHERE probe_run_id IS NOT NULL;
ALTER TABLE findings ADD CONSTRAINT findings_probe_run_fk FOREIGN KEY (probe_run_id) REFERENCES probe_runs (id);

CREATE FUNCTION probe_run_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lookout_probe_run', NEW.id::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER probe_runs_notify AFTER INSERT OR UPDATE ON probe_runs
    FOR EACH ROW EXECUTE FUNCTION probe_run_notify();
