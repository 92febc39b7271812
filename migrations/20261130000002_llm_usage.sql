-- LLM cost accounting (issue 13; docs/llm-costs.md).

-- Ingest tokens: an API token with scope 'ingest' may only send OTLP traces (and is the only
-- kind that may). It has the viewer role and no deployment scope.
ALTER TABLE api_tokens ADD COLUMN scope TEXT;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope CHECK (
    scope IS NULL
    OR (scope = 'ingest' AND role = 'viewer' AND deploy_services IS NULL));

-- The price book: one row per provider, model (exact name or `*` pattern), service tier,
-- effective date and prompt-size tier; per million tokens, exact. A row is never updated:
-- a changed price is a new row, the old one retired (kept for the records it priced).
CREATE TABLE llm_prices (
    id BIGSERIAL PRIMARY KEY,
    provider TEXT NOT NULL CHECK (provider <> '' AND length(provider) <= 100),
    model TEXT NOT NULL CHECK (model <> '' AND length(model) <= 200),
    service_tier TEXT NOT NULL DEFAULT 'default' CHECK (service_tier <> ''),
    min_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (min_prompt_tokens >= 0),
    effective_from TIMESTAMPTZ NOT NULL,
    input NUMERIC NOT NULL CHECK (input >= 0),
    cache_read NUMERIC CHECK (cache_read >= 0),
    cache_write_5m NUMERIC CHECK (cache_write_5m >= 0),
    cache_write_1h NUMERIC CHECK (cache_write_1h >= 0),
    output NUMERIC NOT NULL CHECK (output >= 0),
    reasoning NUMERIC CHECK (reasoning >= 0),
    source TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    retired_at TIMESTAMPTZ,
    replaces BIGINT REFERENCES llm_prices(id)
);
CREATE UNIQUE INDEX llm_prices_live_key ON llm_prices
    (provider, model, service_tier, min_prompt_tokens, effective_from) WHERE retired_at IS NULL;

-- One LLM call (an attempt, for a call that failed over). Append-only, partitioned by day
-- (partitions are created as records arrive and ahead of time, and dropped by retention).
-- Idempotent by (record_id, started_at): a span's record id is its trace id and span id, and
-- a retried export carries the same start time.
CREATE TABLE llm_usage (
    started_at TIMESTAMPTZ NOT NULL,
    record_id TEXT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    parent_span_id TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request_model TEXT,
    operation TEXT NOT NULL,
    service TEXT NOT NULL,
    feature TEXT NOT NULL,
    tenant TEXT NOT NULL,
    service_tier TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error_type TEXT,
    duration_ms DOUBLE PRECISION NOT NULL,
    input BIGINT NOT NULL,
    cache_read BIGINT NOT NULL,
    cache_write_5m BIGINT NOT NULL,
    cache_write_1h BIGINT NOT NULL,
    output BIGINT NOT NULL,
    reasoning BIGINT NOT NULL,
    raw_usage JSONB NOT NULL,
    price_id BIGINT,
    cost NUMERIC,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (record_id, started_at),
    CHECK ((price_id IS NULL) = (cost IS NULL))
) PARTITION BY RANGE (started_at);
CREATE INDEX llm_usage_trace ON llm_usage (trace_id);

-- Hourly rollups, maintained in the transaction that inserts the records: the review reads
-- these, never the raw rows. price_id NULL = unpriced.
CREATE TABLE llm_usage_hourly (
    hour TIMESTAMPTZ NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    service TEXT NOT NULL,
    feature TEXT NOT NULL,
    tenant TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    price_id BIGINT,
    calls BIGINT NOT NULL,
    input BIGINT NOT NULL,
    cache_read BIGINT NOT NULL,
    cache_write_5m BIGINT NOT NULL,
    cache_write_1h BIGINT NOT NULL,
    output BIGINT NOT NULL,
    reasoning BIGINT NOT NULL,
    cost NUMERIC NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX llm_usage_hourly_key ON llm_usage_hourly
    (hour, provider, model, service, feature, tenant, operation, status, price_id) NULLS NOT DISTINCT;
