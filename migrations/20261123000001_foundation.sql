-- Foundation: users, API tokens, browser sessions, sign-in throttling and the audit log.

CREATE TYPE user_role AS ENUM ('viewer', 'responder', 'approver', 'admin');

CREATE TABLE users (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            TEXT        NOT NULL,
    display_name        TEXT        NOT NULL DEFAULT '',
    password_hash       TEXT        NOT NULL,
    role                user_role   NOT NULL,
    disabled            BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    password_changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at       TIMESTAMPTZ,
    CONSTRAINT users_username_shape CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$')
);
CREATE UNIQUE INDEX users_username_key ON users (username);

CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL,
    -- SHA-256 of the whole token; tokens carry 256 random bits, so a fast hash is enough.
    token_hash   BYTEA       NOT NULL,
    -- The first characters of the token, shown in Settings so people can tell tokens apart.
    prefix       TEXT        NOT NULL,
    role         user_role   NOT NULL,
    created_by   BIGINT      REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    revoked_by   BIGINT      REFERENCES users (id),
    CONSTRAINT api_tokens_name_shape CHECK (char_length(name) BETWEEN 1 AND 100)
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);

-- tower-sessions records. user_id is copied out of the record so that disabling a user or
-- resetting a password can end every session of that user in one statement.
CREATE TABLE sessions (
    id          TEXT        PRIMARY KEY,
    data        JSONB       NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL,
    user_id     BIGINT      REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry_date);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE user_id IS NOT NULL;

-- Failed sign-ins, counted per account and per client address inside a sliding window.
-- Kept in PostgreSQL so that every replica enforces the same limit.
CREATE TABLE login_failures (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username  TEXT        NOT NULL,
    client_ip TEXT        NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_username_idx ON login_failures (username, at);
CREATE INDEX login_failures_ip_idx ON login_failures (client_ip, at);

-- Append-only record of authentication events and every administrative action.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id    BIGINT      REFERENCES users (id),
    actor_name  TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    target      TEXT        NOT NULL DEFAULT '',
    details     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    client_ip   TEXT        NOT NULL DEFAULT '',
    request_id  TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_name, at DESC);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
