-- Target kinds are registered in code (domain::kinds), one implementation each; the column
-- holds the kind's name. A name the server does not support is refused by name when used,
-- so the database no longer needs editing (and re-deploying) for a new kind.
ALTER TABLE targets ALTER COLUMN kind TYPE text USING kind::text;
ALTER TABLE probe_runs ALTER COLUMN target_kind TYPE text USING target_kind::text;
DROP TYPE target_kind;
ALTER TABLE targets ADD CONSTRAINT targets_kind_shape CHECK (kind ~ '^[a-z][a-z0-9_-]{0,31}$');
ALTER TABLE probe_runs ADD CONSTRAINT probe_runs_target_kind_shape
    CHECK (target_kind ~ '^[a-z][a-z0-9_-]{0,31}$');
