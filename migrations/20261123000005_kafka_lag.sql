-- Kafka consumer-lag history. The sampler writes one row per (target, group, topic,
-- partition) per round; each round's outcome (or why it was skipped) is in kafka_rounds;
-- kafka_groups holds the latest evaluated state of every group, so the overview reads one
-- row per group whatever the history's size. Replicas share the sampling through leases.

CREATE TABLE kafka_samples (
    target_id    BIGINT      NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    group_name   TEXT        NOT NULL,
    topic        TEXT        NOT NULL,
    partition    INT         NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    committed    BIGINT,
    end_offset   BIGINT      NOT NULL,
    start_offset BIGINT      NOT NULL,
    PRIMARY KEY (target_id, group_name, topic, partition, at)
);
CREATE INDEX kafka_samples_group_at_idx ON kafka_samples (target_id, group_name, at DESC);
CREATE INDEX kafka_samples_at_idx ON kafka_samples (at);

CREATE TABLE kafka_rounds (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id   BIGINT      NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    ok          BOOLEAN     NOT NULL,
    error       TEXT,
    groups      INT         NOT NULL DEFAULT 0,
    partitions  INT         NOT NULL DEFAULT 0,
    requests    INT         NOT NULL DEFAULT 0,
    duration_ms INT         NOT NULL DEFAULT 0,
    holder      TEXT        NOT NULL
);
CREATE INDEX kafka_rounds_target_idx ON kafka_rounds (target_id, at DESC);

CREATE TABLE kafka_groups (
    target_id    BIGINT      NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    group_name   TEXT        NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    state        TEXT        NOT NULL,
    protocol     TEXT        NOT NULL DEFAULT '',
    members      JSONB       NOT NULL DEFAULT '[]'::jsonb,
    partitions   INT         NOT NULL DEFAULT 0,
    total_lag    BIGINT      NOT NULL DEFAULT 0,
    time_lag_s   DOUBLE PRECISION,
    -- 'exact', 'estimated' or 'at_least'
    time_lag_kind TEXT,
    -- OK, WARN, ERR, INCOMPLETE
    status       TEXT        NOT NULL,
    worst        TEXT        NOT NULL,
    reason       TEXT        NOT NULL,
    catch_up     TEXT        NOT NULL DEFAULT '',
    -- [{topic, partition, status, reason, lag, committed, end, start, time_lag_s, time_lag_kind}]
    verdicts     JSONB       NOT NULL DEFAULT '[]'::jsonb,
    -- total lag of the last 20 rounds, oldest first (the sparkline)
    trend        BIGINT[]    NOT NULL DEFAULT '{}',
    -- sort keys of the overview: ERR 3, WARN 2, INCOMPLETE 1, OK 0; members
    status_rank  SMALLINT    NOT NULL DEFAULT 0,
    member_count INT         NOT NULL DEFAULT 0,
    PRIMARY KEY (target_id, group_name)
);
-- One index per sort of the overview, so every page is one index range (keyset paging on
-- (key, group_name)); numeric keys are compared as float8.
CREATE INDEX kafka_groups_lag_idx ON kafka_groups (target_id, (total_lag::float8), group_name);
CREATE INDEX kafka_groups_status_idx ON kafka_groups (target_id, (status_rank::float8), group_name);
CREATE INDEX kafka_groups_time_lag_idx ON kafka_groups (target_id, (coalesce(time_lag_s, -1)), group_name);
CREATE INDEX kafka_groups_members_idx ON kafka_groups (target_id, (member_count::float8), group_name);
CREATE INDEX kafka_groups_state_idx ON kafka_groups (target_id, state, group_name);
-- The topic view: groups whose partitions include a topic.
CREATE INDEX kafka_groups_verdicts_idx ON kafka_groups USING gin (verdicts jsonb_path_ops);

CREATE TABLE kafka_sampler_leases (
    target_id  BIGINT      PRIMARY KEY REFERENCES targets (id) ON DELETE CASCADE,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- A group in WARN or ERR: since when, and whether it has alerted (once per episode).
CREATE TABLE kafka_alerts (
    target_id   BIGINT      NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    group_name  TEXT        NOT NULL,
    bad_since   TIMESTAMPTZ NOT NULL,
    alerted_at  TIMESTAMPTZ,
    incident_id BIGINT      REFERENCES incidents (id),
    PRIMARY KEY (target_id, group_name)
);

-- Group totals per time bucket at 1-minute, 10-minute and 1-hour resolution, maintained by
-- every sampling round (one upsert per group and resolution). Graphs over long ranges read
-- these; per-partition detail stays in kafka_samples for its (shorter) retention.
CREATE TABLE kafka_lag_rollups (
    target_id     BIGINT      NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    group_name    TEXT        NOT NULL,
    resolution    INT         NOT NULL CHECK (resolution IN (60, 600, 3600)),
    bucket        TIMESTAMPTZ NOT NULL,
    lag_max       BIGINT      NOT NULL,
    lag_sum       BIGINT      NOT NULL,
    samples       INT         NOT NULL,
    end_max       BIGINT      NOT NULL,
    committed_max BIGINT      NOT NULL,
    PRIMARY KEY (target_id, group_name, resolution, bucket)
);
CREATE INDEX kafka_lag_rollups_bucket_idx ON kafka_lag_rollups (resolution, bucket);
