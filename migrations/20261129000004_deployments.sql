-- Deployments (issue 12): created from a template version, which they keep forever; their
-- items copied from it; approvals with the frozen snapshot they were given on; and an
-- append-only record of everything that happened (the database refuses UPDATE, DELETE and
-- TRUNCATE on it, as on the incident timeline).
CREATE TABLE deployments (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service          TEXT        NOT NULL,
    environment      TEXT        NOT NULL,
    version          TEXT        NOT NULL,
    description      TEXT        NOT NULL DEFAULT '',
    requester        TEXT        NOT NULL,
    requester_id     BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    template_id      TEXT        NOT NULL,
    template_version INTEGER     NOT NULL,
    status           TEXT        NOT NULL DEFAULT 'draft',
    commit_sha       TEXT,
    pipeline_url     TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    CONSTRAINT deployments_template FOREIGN KEY (template_id, template_version)
        REFERENCES deployment_templates (template_id, version),
    CONSTRAINT deployments_status CHECK (status IN ('draft', 'awaiting_approval', 'approved',
        'in_progress', 'verifying', 'done', 'rejected', 'rolled_back', 'cancelled')),
    CONSTRAINT deployments_description_len CHECK (char_length(description) <= 5000)
);
CREATE INDEX deployments_list_idx ON deployments (id DESC);
CREATE INDEX deployments_service_idx ON deployments (service, environment, id DESC);

CREATE TABLE deployment_items (
    deployment_id BIGINT      NOT NULL REFERENCES deployments (id),
    item_id       TEXT        NOT NULL,
    section       TEXT        NOT NULL CHECK (section IN ('pre', 'during', 'post')),
    position      INTEGER     NOT NULL,
    kind          TEXT        NOT NULL,
    text          TEXT        NOT NULL,
    help          TEXT        NOT NULL DEFAULT '',
    required      BOOLEAN     NOT NULL,
    requires_note BOOLEAN     NOT NULL,
    state         TEXT        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running',
        'passed', 'failed', 'inconclusive', 'waived', 'checked')),
    set_by        TEXT,
    set_at        TIMESTAMPTZ,
    note          TEXT,
    PRIMARY KEY (deployment_id, item_id)
);

CREATE TABLE deployment_approvals (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id   BIGINT      NOT NULL REFERENCES deployments (id),
    approver        TEXT        NOT NULL,
    approver_id     BIGINT      NOT NULL REFERENCES users (id),
    decision        TEXT        NOT NULL CHECK (decision IN ('approved', 'rejected')),
    reason          TEXT,
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    snapshot        TEXT        NOT NULL,
    snapshot_sha256 TEXT        NOT NULL,
    voided_at       TIMESTAMPTZ,
    voided_reason   TEXT
);
-- One standing decision per person: the same person counts once.
CREATE UNIQUE INDEX deployment_approvals_once ON deployment_approvals (deployment_id, approver_id)
    WHERE voided_at IS NULL;

CREATE TABLE deployment_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id BIGINT      NOT NULL REFERENCES deployments (id),
    at            TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    actor         TEXT        NOT NULL,
    kind          TEXT        NOT NULL,
    body          TEXT        NOT NULL,
    details       JSONB       NOT NULL DEFAULT '{}'
);
CREATE INDEX deployment_events_idx ON deployment_events (deployment_id, id);

CREATE FUNCTION deployment_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'deployment events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER deployment_events_append_only
    BEFORE UPDATE OR DELETE ON deployment_events
    FOR EACH ROW EXECUTE FUNCTION deployment_events_are_append_only();
CREATE TRIGGER deployment_events_no_truncate
    BEFORE TRUNCATE ON deployment_events
    FOR EACH STATEMENT EXECUTE FUNCTION deployment_events_are_append_only();
