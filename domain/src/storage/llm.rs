//! `llm_prices`, `llm_usage` (partitioned by day) and `llm_usage_hourly` (the rollups the
//! review reads).

use crate::llm::prices::{Price, Rates};
use crate::llm::tokens::{Buckets, RawUsage};
use rust_decimal::Decimal;
use sqlx::{PgExecutor, Row};
use time::{Date, OffsetDateTime};

/// One call, normalised and priced, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub record_id: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub parent_span_id: Option<String>,
    pub started_at: OffsetDateTime,
    pub duration_ms: f64,
    pub provider: String,
    pub model: String,
    pub request_model: Option<String>,
    pub operation: String,
    pub service: String,
    pub feature: String,
    pub tenant: String,
    pub service_tier: String,
    pub ok: bool,
    pub error_type: Option<String>,
    pub buckets: Buckets,
    pub raw: RawUsage,
    pub price_id: Option<i64>,
    pub cost: Option<Decimal>,
}

const PRICE_COLUMNS: &str = "id, provider, model, service_tier, min_prompt_tokens, effective_from, \
     input, cache_read, cache_write_5m, cache_write_1h, output, reasoning";

fn price_from_row(r: &sqlx::postgres::PgRow) -> sqlx::Result<Price> {
    Ok(Price {
        id: r.try_get("id")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        service_tier: r.try_get("service_tier")?,
        min_prompt_tokens: r.try_get("min_prompt_tokens")?,
        effective_from: r.try_get("effective_from")?,
        rates: Rates {
            input: r.try_get("input")?,
            cache_read: r.try_get("cache_read")?,
            cache_write_5m: r.try_get("cache_write_5m")?,
            cache_write_1h: r.try_get("cache_write_1h")?,
            output: r.try_get("output")?,
            reasoning: r.try_get("reasoning")?,
        },
    })
}

/// The six token buckets of a row with columns named after them.
pub fn buckets_from_row(r: &sqlx::postgres::PgRow) -> sqlx::Result<Buckets> {
    Ok(Buckets {
        input: r.try_get("input")?,
        cache_read: r.try_get("cache_read")?,
        cache_write_5m: r.try_get("cache_write_5m")?,
        cache_write_1h: r.try_get("cache_write_1h")?,
        output: r.try_get("output")?,
        reasoning: r.try_get("reasoning")?,
    })
}

/// The live price book (retired rows left out).
pub async fn live_prices(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Price>> {
    sqlx::query(&format!(
        "SELECT {PRICE_COLUMNS} FROM llm_prices WHERE retired_at IS NULL ORDER BY id"
    ))
    .fetch_all(db)
    .await?
    .iter()
    .map(price_from_row)
    .collect()
}

/// Prices by id, retired ones included (the review needs the rates of whatever priced a row).
pub async fn prices_by_id(db: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<Price>> {
    sqlx::query(&format!(
        "SELECT {PRICE_COLUMNS} FROM llm_prices WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?
    .iter()
    .map(price_from_row)
    .collect()
}

pub async fn price_count(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM llm_prices")
        .fetch_one(db)
        .await
}

/// A price as written (the id is assigned).
#[derive(Debug, Clone)]
pub struct NewPrice<'a> {
    pub price: &'a Price,
    pub source: &'a str,
}

pub async fn insert_price(
    db: impl PgExecutor<'_>,
    p: &NewPrice<'_>,
    created_by: Option<i64>,
) -> sqlx::Result<i64> {
    let r = &p.price.rates;
    sqlx::query_scalar(
        "INSERT INTO llm_prices (provider, model, service_tier, min_prompt_tokens, effective_from,
             input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, source, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(&p.price.provider)
    .bind(&p.price.model)
    .bind(&p.price.service_tier)
    .bind(p.price.min_prompt_tokens)
    .bind(p.price.effective_from)
    .bind(r.input)
    .bind(r.cache_read)
    .bind(r.cache_write_5m)
    .bind(r.cache_write_1h)
    .bind(r.output)
    .bind(r.reasoning)
    .bind(p.source)
    .bind(created_by)
    .fetch_one(db)
    .await
}

/// The partition holding `day` (UTC).
pub fn partition_name(day: Date) -> String {
    format!(
        "llm_usage_{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// Creates the day's partition if it is missing. Serialised by an advisory lock so replicas
/// creating the same day do not collide.
pub async fn ensure_partition(db: &mut sqlx::PgConnection, day: Date) -> sqlx::Result<()> {
    let name = partition_name(day);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&name)
        .fetch_one(&mut *db)
        .await?;
    if exists {
        return Ok(());
    }
    let next = day.next_day().unwrap_or(day);
    let mut tx = sqlx::Connection::begin(&mut *db).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('llm_usage partitions'))")
        .execute(&mut *tx)
        .await?;
    // The name and bounds come from a Date, never from input.
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF llm_usage
         FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')"
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The partitions that exist, oldest first, with their day.
pub async fn partitions(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
          WHERE p.relname = 'llm_usage' ORDER BY 1",
    )
    .fetch_all(db)
    .await
}

/// Drops a partition (retention). The name must come from [`partitions`].
pub async fn drop_partition(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<()> {
    if !name.starts_with("llm_usage_") || !name[10..].chars().all(|c| c.is_ascii_digit()) {
        return Err(sqlx::Error::Protocol(format!(
            "not a usage partition: {name}"
        )));
    }
    sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
        .execute(db)
        .await?;
    Ok(())
}

/// Inserts the rows not already stored (by record id and start time) and adds exactly those to
/// the hourly rollups, in one statement. Returns how many rows were new.
pub async fn insert_usage(db: impl PgExecutor<'_>, rows: &[UsageRow]) -> sqlx::Result<i64> {
    macro_rules! col {
        ($f:expr) => {
            rows.iter().map($f).collect::<Vec<_>>()
        };
    }
    let raw = col!(|r| serde_json::to_value(r.raw).unwrap_or_default());
    sqlx::query_scalar(
        "WITH ins AS (
           INSERT INTO llm_usage (started_at, record_id, trace_id, span_id, parent_span_id,
               provider, model, request_model, operation, service, feature, tenant, service_tier,
               status, error_type, duration_ms, input, cache_read, cache_write_5m, cache_write_1h,
               output, reasoning, raw_usage, price_id, cost)
           SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
               $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
               $13::text[], $14::text[], $15::text[], $16::float8[], $17::int8[], $18::int8[],
               $19::int8[], $20::int8[], $21::int8[], $22::int8[], $23::jsonb[], $24::int8[],
               $25::numeric[])
           ON CONFLICT DO NOTHING
           RETURNING *
         ), up AS (
           INSERT INTO llm_usage_hourly AS h (hour, provider, model, service, feature, tenant,
               operation, status, price_id, calls, input, cache_read, cache_write_5m,
               cache_write_1h, output, reasoning, cost)
           SELECT date_trunc('hour', started_at, 'UTC'), provider, model, service, feature, tenant,
                  operation, status, price_id, count(*), sum(input), sum(cache_read),
                  sum(cache_write_5m), sum(cache_write_1h), sum(output), sum(reasoning),
                  coalesce(sum(cost), 0)
             FROM ins
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
           ON CONFLICT (hour, provider, model, service, feature, tenant, operation, status, price_id)
           DO UPDATE SET calls = h.calls + EXCLUDED.calls, input = h.input + EXCLUDED.input,
               cache_read = h.cache_read + EXCLUDED.cache_read,
               cache_write_5m = h.cache_write_5m + EXCLUDED.cache_write_5m,
               cache_write_1h = h.cache_write_1h + EXCLUDED.cache_write_1h,
               output = h.output + EXCLUDED.output, reasoning = h.reasoning + EXCLUDED.reasoning,
               cost = h.cost + EXCLUDED.cost
           RETURNING 1
         )
         SELECT (SELECT count(*) FROM ins) + 0 * (SELECT count(*) FROM up)",
    )
    .bind(col!(|r| r.started_at))
    .bind(col!(|r| r.record_id.clone()))
    .bind(col!(|r| r.trace_id.clone()))
    .bind(col!(|r| r.span_id.clone()))
    .bind(col!(|r| r.parent_span_id.clone()))
    .bind(col!(|r| r.provider.clone()))
    .bind(col!(|r| r.model.clone()))
    .bind(col!(|r| r.request_model.clone()))
    .bind(col!(|r| r.operation.clone()))
    .bind(col!(|r| r.service.clone()))
    .bind(col!(|r| r.feature.clone()))
    .bind(col!(|r| r.tenant.clone()))
    .bind(col!(|r| r.service_tier.clone()))
    .bind(col!(|r| if r.ok { "ok" } else { "error" }))
    .bind(col!(|r| r.error_type.clone()))
    .bind(col!(|r| r.duration_ms))
    .bind(col!(|r| r.buckets.input))
    .bind(col!(|r| r.buckets.cache_read))
    .bind(col!(|r| r.buckets.cache_write_5m))
    .bind(col!(|r| r.buckets.cache_write_1h))
    .bind(col!(|r| r.buckets.output))
    .bind(col!(|r| r.buckets.reasoning))
    .bind(raw)
    .bind(col!(|r| r.price_id))
    .bind(col!(|r| r.cost))
    .fetch_one(db)
    .await
}

/// One rollup group over a time range: the dimensions asked for and the sums.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    pub provider: String,
    pub model: String,
    pub service: String,
    pub feature: String,
    pub tenant: String,
    pub operation: String,
    pub status: String,
    pub price_id: Option<i64>,
    pub calls: i64,
    pub tokens: Buckets,
    pub cost: Decimal,
}

/// Every rollup group in `[from, to)` among those matching `filters`, summed over the hours
/// in SQL. The tenant (the widest dimension) is kept only when `with_tenant`; otherwise it is
/// summed over and reported as empty. The review aggregates these further in memory.
pub async fn rollups(
    db: impl PgExecutor<'_>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    with_tenant: bool,
    filters: &[(String, String)],
) -> sqlx::Result<Vec<RollupRow>> {
    let tenant = if with_tenant { "tenant" } else { "''::text" };
    let (more, values) = filter_sql(filters, 3);
    let cond = format!("hour >= $1 AND hour < $2{more}");
    let sql = format!(
        "SELECT provider, model, service, feature, {tenant} AS tenant, operation, status, price_id,
                sum(calls)::int8 AS calls, sum(input)::int8 AS input,
                sum(cache_read)::int8 AS cache_read, sum(cache_write_5m)::int8 AS cache_write_5m,
                sum(cache_write_1h)::int8 AS cache_write_1h, sum(output)::int8 AS output,
                sum(reasoning)::int8 AS reasoning, sum(cost) AS cost
           FROM llm_usage_hourly
          WHERE {cond}
          GROUP BY provider, model, service, feature, 5, operation, status, price_id"
    );
    let mut q = sqlx::query(&sql).bind(from).bind(to);
    for v in values {
        q = q.bind(v);
    }
    let rows = q.fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(RollupRow {
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                service: r.try_get("service")?,
                feature: r.try_get("feature")?,
                tenant: r.try_get("tenant")?,
                operation: r.try_get("operation")?,
                status: r.try_get("status")?,
                price_id: r.try_get("price_id")?,
                calls: r.try_get("calls")?,
                tokens: buckets_from_row(r)?,
                cost: r.try_get("cost")?,
            })
        })
        .collect()
}

/// Cost and calls per bucket of `step` from `from` (for the trend), priced calls only, and
/// the unpriced calls beside.
pub async fn trend(
    db: impl PgExecutor<'_>,
    from: OffsetDateTime,
    step_secs: i64,
    steps: i64,
) -> sqlx::Result<Vec<(i64, Decimal, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT floor(extract(epoch FROM hour - $1) / $2)::int8 AS i,
                sum(cost) AS cost, sum(calls)::int8 AS calls,
                coalesce(sum(calls) FILTER (WHERE price_id IS NULL), 0)::int8 AS unpriced
           FROM llm_usage_hourly
          WHERE hour >= $1 AND hour < $1 + make_interval(secs => $2 * $3)
          GROUP BY 1 ORDER BY 1",
    )
    .bind(from)
    .bind(step_secs as f64)
    .bind(steps as f64)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("i")?,
                r.try_get("cost")?,
                r.try_get("calls")?,
                r.try_get("unpriced")?,
            ))
        })
        .collect()
}

/// The dimensions a review may filter on: they are also `llm_usage` columns.
const FILTER_COLUMNS: [&str; 6] = [
    "provider",
    "model",
    "service",
    "feature",
    "tenant",
    "operation",
];

/// `AND col = $n` for each filter on a known column (anything else is left out), numbered
/// from `$first`, and the values to bind in that order. Only known column names reach the
/// SQL; values are always bound.
fn filter_sql(filters: &[(String, String)], first: usize) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for (k, v) in filters {
        let Some(col) = FILTER_COLUMNS.iter().find(|c| **c == k.as_str()) else {
            continue;
        };
        sql.push_str(&format!(" AND {col} = ${}", first + values.len()));
        values.push(v.clone());
    }
    (sql, values)
}

/// The most expensive traces in `[from, to)` among the calls matching `filters` (reads the raw
/// rows of those days: bounded by the partition range and the limit).
pub async fn top_traces(
    db: impl PgExecutor<'_>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    filters: &[(String, String)],
    limit: i64,
) -> sqlx::Result<Vec<(String, String, i64, Decimal)>> {
    let mut sql = String::from(
        "SELECT trace_id, min(service) AS service, count(*)::int8 AS calls, sum(cost) AS cost
           FROM llm_usage
          WHERE started_at >= $1 AND started_at < $2 AND trace_id IS NOT NULL AND cost IS NOT NULL",
    );
    let (more, values) = filter_sql(filters, 4);
    sql.push_str(&more);
    sql.push_str(" GROUP BY trace_id ORDER BY sum(cost) DESC, trace_id LIMIT $3");
    let mut q = sqlx::query(&sql).bind(from).bind(to).bind(limit);
    for v in values {
        q = q.bind(v);
    }
    let rows = q.fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("trace_id")?,
                r.try_get("service")?,
                r.try_get("calls")?,
                r.try_get("cost")?,
            ))
        })
        .collect()
}

/// One attempt of a request that failed over: the calls sharing a parent span among which at
/// least one failed and at least one succeeded, in `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub parent: String,
    pub started_at: OffsetDateTime,
    pub feature: String,
    pub provider: String,
    pub model: String,
    pub service_tier: String,
    pub ok: bool,
    pub tokens: Buckets,
    pub cost: Option<Decimal>,
}

/// The attempts of every request that failed over in `[from, to)` among the calls matching
/// `filters` (at most `limit` attempts: reads the week's raw rows).
pub async fn fallback_attempts(
    db: impl PgExecutor<'_>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    filters: &[(String, String)],
    limit: i64,
) -> sqlx::Result<Vec<Attempt>> {
    let (more, values) = filter_sql(filters, 4);
    let cond = format!("started_at >= $1 AND started_at < $2 AND parent_span_id IS NOT NULL{more}");
    let sql = format!(
        "WITH w AS (SELECT * FROM llm_usage WHERE {cond}),
              chains AS (SELECT trace_id, parent_span_id FROM w GROUP BY trace_id, parent_span_id
                          HAVING bool_or(status = 'error') AND bool_or(status = 'ok'))
         SELECT w.parent_span_id, w.started_at, w.feature, w.provider, w.model, w.service_tier,
                w.status = 'ok' AS ok, w.input, w.cache_read, w.cache_write_5m, w.cache_write_1h,
                w.output, w.reasoning, w.cost
           FROM w JOIN chains c ON c.parent_span_id = w.parent_span_id
                               AND c.trace_id IS NOT DISTINCT FROM w.trace_id
          ORDER BY w.parent_span_id, w.started_at
          LIMIT $3"
    );
    let mut q = sqlx::query(&sql).bind(from).bind(to).bind(limit);
    for v in values {
        q = q.bind(v);
    }
    q.fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(Attempt {
                parent: r.try_get("parent_span_id")?,
                started_at: r.try_get("started_at")?,
                feature: r.try_get("feature")?,
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                service_tier: r.try_get("service_tier")?,
                ok: r.try_get("ok")?,
                tokens: buckets_from_row(r)?,
                cost: r.try_get("cost")?,
            })
        })
        .collect()
}
