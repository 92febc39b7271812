-- Incidents: the record, roles, an append-only timeline, findings and action items.
-- Probe runs (a later migration) will write findings and timeline events into these tables.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TYPE incident_status AS ENUM
    ('triage', 'investigating', 'mitigated', 'resolved', 'closed', 'cancelled');
CREATE TYPE incident_severity AS ENUM ('SEV1', 'SEV2', 'SEV3', 'SEV4');

CREATE SEQUENCE incident_number_seq;

CREATE TABLE incidents (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The human key is 'INC-' || number.
    number          BIGINT      NOT NULL DEFAULT nextval('incident_number_seq'),
    title           TEXT        NOT NULL,
    summary         TEXT        NOT NULL DEFAULT '',
    severity        incident_severity NOT NULL,
    status          incident_status   NOT NULL DEFAULT 'triage',
    services        TEXT[]      NOT NULL,
    environment     TEXT        NOT NULL,
    labels          JSONB       NOT NULL DEFAULT '{}'::jsonb,
    commander_id    BIGINT      REFERENCES users (id),
    scribe_id       BIGINT      REFERENCES users (id),
    responder_ids   BIGINT[]    NOT NULL DEFAULT '{}',
    created_by      TEXT        NOT NULL,
    created_by_id   BIGINT      REFERENCES users (id),
    -- Alertmanager's groupKey for incidents opened by the webhook.
    alert_group_key TEXT,
    detected_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    acknowledged_at TIMESTAMPTZ,
    mitigated_at    TIMESTAMPTZ,
    resolved_at     TIMESTAMPTZ,
    closed_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The list's order, descending: open incidents by severity (SEV1 = 8 … SEV4 = 5), then
    -- everything else (0). Descending like created_at and id, so the keyset condition
    -- (list_order, created_at, id) < (…) is one index range, however deep the page.
    list_order      SMALLINT GENERATED ALWAYS AS (
        CASE WHEN status IN ('triage', 'investigating', 'mitigated')
             THEN CASE severity WHEN 'SEV1' THEN 8 WHEN 'SEV2' THEN 7 WHEN 'SEV3' THEN 6 ELSE 5 END
             ELSE 0 END) STORED,
    CONSTRAINT incidents_title_len CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT incidents_summary_len CHECK (char_length(summary) <= 20000),
    CONSTRAINT incidents_services_present CHECK (cardinality(services) BETWEEN 1 AND 20),
    CONSTRAINT incidents_env_len CHECK (char_length(environment) BETWEEN 1 AND 64),
    CONSTRAINT incidents_times_monotonic CHECK (
        (acknowledged_at IS NULL OR acknowledged_at >= detected_at)
        AND (mitigated_at IS NULL OR mitigated_at >= COALESCE(acknowledged_at, detected_at))
        AND (resolved_at IS NULL OR resolved_at >= COALESCE(mitigated_at, acknowledged_at, detected_at))
        AND (closed_at IS NULL OR closed_at >= COALESCE(resolved_at, mitigated_at, acknowledged_at, detected_at)))
);
CREATE UNIQUE INDEX incidents_number_key ON incidents (number);
CREATE INDEX incidents_list_idx ON incidents (list_order, created_at, id);
CREATE INDEX incidents_status_idx ON incidents (status, list_order, created_at, id);
CREATE INDEX incidents_severity_idx ON incidents (severity, list_order, created_at, id);
CREATE INDEX incidents_env_idx ON incidents (environment, list_order, created_at, id);
CREATE INDEX incidents_services_idx ON incidents USING gin (services);
CREATE INDEX incidents_labels_idx ON incidents USING gin (labels jsonb_path_ops);
CREATE INDEX incidents_title_trgm_idx ON incidents USING gin (title gin_trgm_ops);
CREATE INDEX incidents_detected_idx ON incidents (detected_at);
-- At most one open incident per Alertmanager group.
CREATE UNIQUE INDEX incidents_open_group_key ON incidents (alert_group_key)
    WHERE alert_group_key IS NOT NULL AND status IN ('triage', 'investigating', 'mitigated');

CREATE TYPE timeline_kind AS ENUM (
    'created', 'status_change', 'severity_change', 'role_change', 'note', 'finding_added',
    'finding_updated', 'probe_run_started', 'probe_run_finished', 'alert_received',
    'alert_resolved', 'deployment_linked', 'postmortem_exported', 'timestamp_corrected',
    'summary_changed', 'action_item');

CREATE TABLE timeline_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id BIGINT        NOT NULL REFERENCES incidents (id),
    at          TIMESTAMPTZ   NOT NULL DEFAULT now(),
    actor       TEXT          NOT NULL,
    actor_id    BIGINT        REFERENCES users (id),
    kind        timeline_kind NOT NULL,
    body        TEXT          NOT NULL DEFAULT '',
    -- body rendered and sanitized once, at insert (events never change).
    body_html   TEXT          NOT NULL DEFAULT '',
    details     JSONB         NOT NULL DEFAULT '{}'::jsonb,
    pinned      BOOLEAN       NOT NULL DEFAULT FALSE,
    CONSTRAINT timeline_body_len CHECK (char_length(body) <= 20000)
);
CREATE INDEX timeline_incident_idx ON timeline_events (incident_id, at, id);

-- Past events never change: only the pinned flag may be updated, nothing may be deleted.
CREATE FUNCTION timeline_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'timeline events are append-only: DELETE is not allowed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.incident_id IS DISTINCT FROM OLD.incident_id
       OR NEW.at IS DISTINCT FROM OLD.at OR NEW.actor IS DISTINCT FROM OLD.actor
       OR NEW.actor_id IS DISTINCT FROM OLD.actor_id OR NEW.kind IS DISTINCT FROM OLD.kind
       OR NEW.body IS DISTINCT FROM OLD.body OR NEW.body_html IS DISTINCT FROM OLD.body_html
       OR NEW.details IS DISTINCT FROM OLD.details THEN
        RAISE EXCEPTION 'timeline events are append-only: only the pinned flag may change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER timeline_events_append_only
    BEFORE UPDATE OR DELETE ON timeline_events
    FOR EACH ROW EXECUTE FUNCTION timeline_events_guard();
CREATE TRIGGER timeline_events_no_truncate
    BEFORE TRUNCATE ON timeline_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- Edits of a note are new revisions; the event keeps the original body.
CREATE TABLE note_revisions (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id  BIGINT      NOT NULL REFERENCES timeline_events (id),
    body      TEXT        NOT NULL,
    body_html TEXT        NOT NULL DEFAULT '',
    edited_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    edited_by TEXT        NOT NULL,
    CONSTRAINT note_revisions_body_len CHECK (char_length(body) BETWEEN 1 AND 20000)
);
CREATE INDEX note_revisions_event_idx ON note_revisions (event_id, id);
CREATE TRIGGER note_revisions_append_only
    BEFORE UPDATE OR DELETE ON note_revisions
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

-- Live updates: every new event or revision wakes the pages watching that incident
-- (on every replica, through LISTEN).
CREATE FUNCTION timeline_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lookout_incident', NEW.incident_id::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER timeline_events_notify AFTER INSERT OR UPDATE ON timeline_events
    FOR EACH ROW EXECUTE FUNCTION timeline_notify();

CREATE TYPE finding_severity AS ENUM ('critical', 'warning', 'info');
CREATE TYPE finding_status AS ENUM ('open', 'confirmed', 'false_positive', 'fixed');

CREATE TABLE findings (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   BIGINT           REFERENCES incidents (id),
    code          TEXT             NOT NULL,
    -- 'manual', or the probe and target that produced it.
    source_kind   TEXT             NOT NULL DEFAULT 'manual',
    source_probe  TEXT,
    source_target TEXT,
    probe_run_id  BIGINT,
    severity      finding_severity NOT NULL,
    title         TEXT             NOT NULL,
    -- {facts: [{name, value}], command, excerpt}
    evidence      JSONB            NOT NULL DEFAULT '{}'::jsonb,
    remediation   TEXT             NOT NULL DEFAULT '',
    -- remediation rendered and sanitized at insert, and the commands in its code blocks.
    remediation_html TEXT          NOT NULL DEFAULT '',
    commands      TEXT[]           NOT NULL DEFAULT '{}',
    doc_link      TEXT,
    status        finding_status   NOT NULL DEFAULT 'open',
    status_reason TEXT,
    created_at    TIMESTAMPTZ      NOT NULL DEFAULT now(),
    created_by    TEXT             NOT NULL,
    updated_at    TIMESTAMPTZ      NOT NULL DEFAULT now(),
    updated_by    TEXT             NOT NULL,
    CONSTRAINT findings_code_shape CHECK (code ~ '^[A-Z][A-Z0-9_]{2,79}$'),
    CONSTRAINT findings_title_len CHECK (char_length(title) BETWEEN 1 AND 300),
    CONSTRAINT findings_remediation_len CHECK (char_length(remediation) <= 20000),
    CONSTRAINT findings_fp_reason CHECK (status <> 'false_positive' OR coalesce(char_length(status_reason), 0) > 0)
);
CREATE INDEX findings_incident_idx ON findings (incident_id, severity, id);
CREATE INDEX findings_code_idx ON findings (code, status);

CREATE TYPE action_item_status AS ENUM ('open', 'in_progress', 'done', 'wont_do');

CREATE TABLE action_items (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id BIGINT      NOT NULL REFERENCES incidents (id),
    title       TEXT        NOT NULL,
    owner_id    BIGINT      REFERENCES users (id),
    due_date    DATE,
    status      action_item_status NOT NULL DEFAULT 'open',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  TEXT        NOT NULL,
    CONSTRAINT action_items_title_len CHECK (char_length(title) BETWEEN 1 AND 300)
);
CREATE INDEX action_items_incident_idx ON action_items (incident_id, id);
