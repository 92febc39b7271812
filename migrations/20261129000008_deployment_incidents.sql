-- A deployment that went wrong opens an incident from its page (issue 12): linked both ways.
CREATE TABLE deployment_incidents (
    deployment_id BIGINT      NOT NULL REFERENCES deployments (id),
    incident_id   BIGINT      NOT NULL REFERENCES incidents (id),
    linked_by     TEXT        NOT NULL,
    linked_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, incident_id)
);
CREATE INDEX deployment_incidents_incident_idx ON deployment_incidents (incident_id);
-- Deployments overlapping an incident: by service and environment, newest first.
CREATE INDEX deployments_env_created_idx ON deployments (environment, created_at DESC);
