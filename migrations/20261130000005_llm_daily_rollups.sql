-- Daily rollups for the LLM cost review (issue 13): the hourly rollups keep every dimension
-- and are nearly one row per call when tenants × features × models are many, so the review
-- reads days instead. Two tables: without the tenant (what most views read: few rows per
-- day) and with it (the tenant view and tenant filters). Days are in the review's zone
-- (LOOKOUT_LLM_WEEK_OFFSET, a whole-hour offset): llm_rollup_zone holds the offset they were
-- built with, and a server started with another offset rebuilds both from the hourly rows.
--
-- Ingest does not update them (concurrent batches would queue on the same few daily rows):
-- each batch appends its per-day sums to llm_rollup_delta (no key, no conflicts), a worker
-- folds the deltas into the daily tables every second, and readers add the deltas not yet
-- folded, so the review is exact at any moment.
CREATE TABLE llm_rollup_zone (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    offset_secs INTEGER NOT NULL CHECK (offset_secs % 3600 = 0 AND abs(offset_secs) <= 14 * 3600)
);
INSERT INTO llm_rollup_zone (offset_secs) VALUES (0);

CREATE TABLE llm_usage_daily (
    day DATE NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    service TEXT NOT NULL,
    feature TEXT NOT NULL,
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
CREATE UNIQUE INDEX llm_usage_daily_key ON llm_usage_daily
    (day, provider, model, service, feature, operation, status, price_id) NULLS NOT DISTINCT;

CREATE TABLE llm_usage_daily_tenant (
    day DATE NOT NULL,
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
CREATE UNIQUE INDEX llm_usage_daily_tenant_key ON llm_usage_daily_tenant
    (day, provider, model, service, feature, tenant, operation, status, price_id) NULLS NOT DISTINCT;
CREATE INDEX llm_usage_daily_tenant_tenant ON llm_usage_daily_tenant (tenant, day);

INSERT INTO llm_usage_daily
SELECT (hour AT TIME ZONE 'UTC')::date, provider, model, service, feature, operation, status,
       price_id, sum(calls), sum(input), sum(cache_read), sum(cache_write_5m),
       sum(cache_write_1h), sum(output), sum(reasoning), sum(cost)
  FROM llm_usage_hourly
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
INSERT INTO llm_usage_daily_tenant
SELECT (hour AT TIME ZONE 'UTC')::date, provider, model, service, feature, tenant, operation,
       status, price_id, sum(calls), sum(input), sum(cache_read), sum(cache_write_5m),
       sum(cache_write_1h), sum(output), sum(reasoning), sum(cost)
  FROM llm_usage_hourly
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;

CREATE TABLE llm_rollup_delta (
    day DATE NOT NULL,
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

-- The most expensive traces of a week without reading the week's records: each trace's priced
-- calls and cost, dated by its first call (`day` in the rollup zone). Ingest appends per-batch
-- sums to llm_trace_delta; the same worker folds them; readers add the unfolded ones.
CREATE TABLE llm_traces (
    trace_id TEXT PRIMARY KEY,
    first_at TIMESTAMPTZ NOT NULL,
    day DATE NOT NULL,
    service TEXT NOT NULL,
    calls BIGINT NOT NULL,
    cost NUMERIC NOT NULL
);
CREATE INDEX llm_traces_top ON llm_traces (day, cost DESC, trace_id);
CREATE TABLE llm_trace_delta (
    trace_id TEXT NOT NULL,
    first_at TIMESTAMPTZ NOT NULL,
    day DATE NOT NULL,
    service TEXT NOT NULL,
    calls BIGINT NOT NULL,
    cost NUMERIC NOT NULL
);
INSERT INTO llm_traces
SELECT trace_id, min(started_at), (min(started_at) AT TIME ZONE 'UTC')::date, min(service),
       count(*), sum(cost)
  FROM llm_usage
 WHERE trace_id IS NOT NULL AND cost IS NOT NULL
 GROUP BY trace_id;

-- Fallback chains (a failed call and the attempts under the same parent span, one of which
-- answered), resolved in the background: ingest queues each failed call's (trace, parent) in
-- llm_chain_pending; the llm-rollups job looks up its siblings through the trace index (ten
-- seconds later, and again while no attempt has answered, for an hour) and keeps one summary
-- row per chain, priced; the review sums those rows.
CREATE TABLE llm_chain_pending (
    trace_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    queued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX llm_chain_pending_queued ON llm_chain_pending (queued_at);
CREATE TABLE llm_fallback_chains (
    trace_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    answered_at TIMESTAMPTZ NOT NULL,
    day DATE NOT NULL,
    service TEXT NOT NULL,
    feature TEXT NOT NULL,
    tenant TEXT NOT NULL,
    operation TEXT NOT NULL,
    first_provider TEXT NOT NULL,
    first_model TEXT NOT NULL,
    answer_provider TEXT NOT NULL,
    answer_model TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_cost NUMERIC NOT NULL,
    pricier_cost NUMERIC NOT NULL,
    PRIMARY KEY (trace_id, parent_span_id)
);
CREATE INDEX llm_fallback_chains_day ON llm_fallback_chains (day);
INSERT INTO llm_chain_pending (trace_id, parent_span_id, started_at, queued_at)
SELECT trace_id, parent_span_id, started_at, now() - interval '1 minute'
  FROM llm_usage
 WHERE status = 'error' AND trace_id IS NOT NULL AND parent_span_id IS NOT NULL;
