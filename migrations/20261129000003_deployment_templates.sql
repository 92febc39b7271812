-- Deployment checklist templates (issue 12). A template is YAML; every edit is a new
-- version, and a version never changes or goes away (a deployment keeps the version it was
-- created from, forever): enforced here, not only in the code.
CREATE TABLE deployment_templates (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id   TEXT        NOT NULL,
    version       INTEGER     NOT NULL,
    name          TEXT        NOT NULL,
    description   TEXT        NOT NULL DEFAULT '',
    -- What the author wrote, as written; `spec` is its parsed, validated form.
    yaml          TEXT        NOT NULL,
    spec          JSONB       NOT NULL,
    built_in      BOOLEAN     NOT NULL DEFAULT false,
    created_by    TEXT        NOT NULL,
    created_by_id BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT deployment_templates_id_shape CHECK (template_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    CONSTRAINT deployment_templates_version_positive CHECK (version >= 1),
    CONSTRAINT deployment_templates_yaml_len CHECK (octet_length(yaml) <= 131072),
    CONSTRAINT deployment_templates_one_version UNIQUE (template_id, version)
);

CREATE FUNCTION deployment_template_versions_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'deployment template versions are immutable: % is not allowed (edit by adding a version)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER deployment_templates_immutable
    BEFORE UPDATE OR DELETE ON deployment_templates
    FOR EACH ROW EXECUTE FUNCTION deployment_template_versions_are_immutable();
CREATE TRIGGER deployment_templates_no_truncate
    BEFORE TRUNCATE ON deployment_templates
    FOR EACH STATEMENT EXECUTE FUNCTION deployment_template_versions_are_immutable();
