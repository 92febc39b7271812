-- Targets: the systems Lookout looks at. Credentials are encrypted by the server
-- (ChaCha20-Poly1305, key from LOOKOUT_SECRET_KEY) before they reach this table.

CREATE TYPE target_kind AS ENUM ('redis', 'postgres', 'kafka', 'kubernetes', 'prometheus');

CREATE TABLE targets (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT        NOT NULL,
    kind          target_kind NOT NULL,
    -- A URL (redis://, postgres://, http(s)://) or, for Kafka, bootstrap servers host:port[,…].
    -- Never holds a password: that goes to secret_ciphertext.
    connection    TEXT        NOT NULL,
    username      TEXT        NOT NULL DEFAULT '',
    -- 12-byte nonce followed by the ciphertext and tag; NULL when no secret is set.
    secret_ciphertext BYTEA,
    environment   TEXT        NOT NULL,
    labels        JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_by    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT targets_name_shape CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    CONSTRAINT targets_connection_len CHECK (char_length(connection) BETWEEN 1 AND 2000),
    CONSTRAINT targets_username_len CHECK (char_length(username) <= 200)
);
CREATE UNIQUE INDEX targets_name_key ON targets (name);
CREATE INDEX targets_kind_idx ON targets (kind, name);
