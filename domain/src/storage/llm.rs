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
/// the hourly rollups and the daily deltas (days in the zone of `llm_rollup_zone`; see
/// [`fold_deltas`]), in one statement. Returns how many rows were new.
pub async fn insert_usage(db: impl PgExecutor<'_>, rows: &[UsageRow]) -> sqlx::Result<i64> {
    macro_rules! col {
        ($f:expr) => {
            rows.iter().map($f).collect::<Vec<_>>()
        };
    }
    let raw = col!(|r| serde_json::to_value(r.raw).unwrap_or_default());
    sqlx::query_scalar(&format!(
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
           RETURNING started_at, trace_id, provider, model, service, feature, tenant, operation,
                     status, price_id, input, cache_read, cache_write_5m, cache_write_1h, output,
                     reasoning, cost
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
           DO UPDATE SET {ROLLUP_ADD}
           RETURNING 1
         ), days AS (
           SELECT ((started_at + make_interval(secs => (SELECT offset_secs
                                                          FROM llm_rollup_zone)))
                      AT TIME ZONE 'UTC')::date AS day, ins.*
             FROM ins
         ), d AS (
           INSERT INTO llm_rollup_delta (day, provider, model, service, feature, tenant,
               operation, status, price_id, calls, input, cache_read, cache_write_5m,
               cache_write_1h, output, reasoning, cost)
           SELECT day, provider, model, service, feature, tenant, operation, status, price_id,
                  count(*), sum(input), sum(cache_read), sum(cache_write_5m),
                  sum(cache_write_1h), sum(output), sum(reasoning), coalesce(sum(cost), 0)
             FROM days
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
           RETURNING 1
         ), t AS (
           INSERT INTO llm_trace_delta (trace_id, first_at, day, last_at, last_day, service,
               calls, cost)
           SELECT trace_id, min(started_at), min(day), max(started_at), max(day), min(service),
                  count(*), sum(cost)
             FROM days
            WHERE trace_id IS NOT NULL AND cost IS NOT NULL
            GROUP BY trace_id
           RETURNING 1
         )
         SELECT (SELECT count(*) FROM ins) + 0 * (SELECT count(*) FROM up)
                + 0 * (SELECT count(*) FROM d) + 0 * (SELECT count(*) FROM t)"
    ))
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

/// Every rollup group on the days `[from, to)` (days of the rollup zone) among those matching
/// `filters`, summed over the days in SQL. The tenant (the widest dimension) is kept only when
/// `with_tenant` (read from the daily rollups with the tenant); otherwise it is reported as
/// empty and the smaller daily rollups without it are read. The review aggregates these
/// further in memory.
pub async fn rollups(
    db: impl PgExecutor<'_>,
    from: Date,
    to: Date,
    with_tenant: bool,
    filters: &[(String, String)],
) -> sqlx::Result<Vec<RollupRow>> {
    let (tenant, table) = if with_tenant {
        ("tenant", "llm_usage_daily_tenant")
    } else {
        ("''::text", "llm_usage_daily")
    };
    let cols = "provider, model, service, feature, operation, status, price_id, calls, input, \
                cache_read, cache_write_5m, cache_write_1h, output, reasoning, cost";
    let filters: Vec<(String, String)> = filters
        .iter()
        .filter(|(k, _)| with_tenant || k != "tenant")
        .cloned()
        .collect();
    let (more, values) = filter_sql(&filters, 3);
    let cond = format!("day >= $1 AND day < $2{more}");
    let sql = format!(
        "SELECT provider, model, service, feature, tenant, operation, status, price_id,
                sum(calls)::int8 AS calls, sum(input)::int8 AS input,
                sum(cache_read)::int8 AS cache_read, sum(cache_write_5m)::int8 AS cache_write_5m,
                sum(cache_write_1h)::int8 AS cache_write_1h, sum(output)::int8 AS output,
                sum(reasoning)::int8 AS reasoning, sum(cost) AS cost
           FROM (SELECT {tenant} AS tenant, {cols} FROM {table} WHERE {cond}
                 UNION ALL
                 SELECT {tenant} AS tenant, {cols} FROM llm_rollup_delta WHERE {cond}) x
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

/// Cost, calls and unpriced calls per week of the `weeks` weeks from the day `from` (days of
/// the rollup zone), priced cost only: `(week index, cost, calls, unpriced calls)`.
pub async fn trend(
    db: impl PgExecutor<'_>,
    from: Date,
    weeks: i32,
) -> sqlx::Result<Vec<(i64, Decimal, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT ((day - $1) / 7)::int8 AS i, sum(cost) AS cost, sum(calls)::int8 AS calls,
                coalesce(sum(calls) FILTER (WHERE price_id IS NULL), 0)::int8 AS unpriced
           FROM (SELECT day, price_id, calls, cost FROM llm_usage_daily
                  WHERE day >= $1 AND day < $1 + 7 * $2
                 UNION ALL
                 SELECT day, price_id, calls, cost FROM llm_rollup_delta
                  WHERE day >= $1 AND day < $1 + 7 * $2) x
          GROUP BY 1 ORDER BY 1",
    )
    .bind(from)
    .bind(weeks)
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

/// The offset (seconds east of UTC) the daily rollups' days are in.
pub async fn rollup_zone(db: impl PgExecutor<'_>) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT offset_secs FROM llm_rollup_zone")
        .fetch_one(db)
        .await
}

/// Rebuilds the daily rollups of the days (of the rollup zone) that overlap `[from, to)` from
/// the hourly ones, for every provider or only `providers`. The hourly rollups are exact; the
/// daily ones are their sums, so a whole day is rebuilt even when only part of it changed,
/// and the deltas of those days are dropped (the hourly rows hold them). Call in a transaction.
pub async fn rebuild_daily(
    db: &mut sqlx::PgConnection,
    from: OffsetDateTime,
    to: OffsetDateTime,
    providers: Option<&[String]>,
) -> sqlx::Result<()> {
    if to <= from {
        return Ok(());
    }
    // No fold meanwhile (it would add deltas to the days being rebuilt).
    sqlx::query(FOLD_LOCK).execute(&mut *db).await?;
    let offset = rollup_zone(&mut *db).await?;
    let zone = time::UtcOffset::from_whole_seconds(offset).unwrap_or(time::UtcOffset::UTC);
    let first = from.to_offset(zone).date();
    let last = (to - time::Duration::nanoseconds(1)).to_offset(zone).date();
    let start = |d: Date| d.midnight().assume_offset(zone);
    let (a, b) = (start(first), start(last) + time::Duration::days(1));
    let (from, to) = (first, last);
    // The hourly rollups already hold what the deltas of those days add.
    sqlx::query(
        "DELETE FROM llm_rollup_delta WHERE day >= $1 AND day <= $2
           AND ($3::text[] IS NULL OR provider = ANY($3))",
    )
    .bind(from)
    .bind(to)
    .bind(providers)
    .execute(&mut *db)
    .await?;
    for (table, tenant) in [
        ("llm_usage_daily", ""),
        ("llm_usage_daily_tenant", " tenant,"),
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE day >= $1 AND day <= $2
               AND ($3::text[] IS NULL OR provider = ANY($3))"
        ))
        .bind(from)
        .bind(to)
        .bind(providers)
        .execute(&mut *db)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {table} (day, provider, model, service, feature,{tenant} operation,
                 status, price_id, calls, input, cache_read, cache_write_5m, cache_write_1h,
                 output, reasoning, cost)
             SELECT ((hour + make_interval(secs => $4)) AT TIME ZONE 'UTC')::date, provider,
                    model, service, feature,{tenant} operation, status, price_id, sum(calls),
                    sum(input), sum(cache_read), sum(cache_write_5m), sum(cache_write_1h),
                    sum(output), sum(reasoning), sum(cost)
               FROM llm_usage_hourly
              WHERE hour >= $1 AND hour < $2 AND ($3::text[] IS NULL OR provider = ANY($3))
              GROUP BY 1, 2, 3, 4, 5,{tenant} operation, status, price_id"
        ))
        .bind(a)
        .bind(b)
        .bind(providers)
        .bind(offset as f64)
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}

/// An upsert's `SET` adding a rollup row's sums to the stored row (aliased `h`).
const ROLLUP_ADD: &str = "calls = h.calls + EXCLUDED.calls, input = h.input + EXCLUDED.input, \
    cache_read = h.cache_read + EXCLUDED.cache_read, \
    cache_write_5m = h.cache_write_5m + EXCLUDED.cache_write_5m, \
    cache_write_1h = h.cache_write_1h + EXCLUDED.cache_write_1h, \
    output = h.output + EXCLUDED.output, reasoning = h.reasoning + EXCLUDED.reasoning, \
    cost = h.cost + EXCLUDED.cost";

/// Held while the daily rollups are folded into or rebuilt (transaction-scoped).
const FOLD_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('llm_rollup_fold'))";

/// Folds up to `limit` pending deltas into the daily rollups (one folder at a time; readers
/// see the deltas before or the daily rows after, never both). Call in a transaction.
/// Returns how many deltas it folded.
pub async fn fold_deltas(db: &mut sqlx::PgConnection, limit: i64) -> sqlx::Result<i64> {
    sqlx::query(FOLD_LOCK).execute(&mut *db).await?;
    let sums = "sum(calls), sum(input), sum(cache_read), sum(cache_write_5m), \
                sum(cache_write_1h), sum(output), sum(reasoning), sum(cost)";
    let rollups: i64 = sqlx::query_scalar(&format!(
        "WITH moved AS (
           DELETE FROM llm_rollup_delta
            WHERE ctid = ANY(ARRAY(SELECT ctid FROM llm_rollup_delta LIMIT $1))
           RETURNING *
         ), a AS (
           INSERT INTO llm_usage_daily AS h (day, provider, model, service, feature, operation,
               status, price_id, calls, input, cache_read, cache_write_5m, cache_write_1h,
               output, reasoning, cost)
           SELECT day, provider, model, service, feature, operation, status, price_id, {sums}
             FROM moved GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
           ON CONFLICT (day, provider, model, service, feature, operation, status, price_id)
           DO UPDATE SET {ROLLUP_ADD}
           RETURNING 1
         ), b AS (
           INSERT INTO llm_usage_daily_tenant AS h (day, provider, model, service, feature,
               tenant, operation, status, price_id, calls, input, cache_read, cache_write_5m,
               cache_write_1h, output, reasoning, cost)
           SELECT day, provider, model, service, feature, tenant, operation, status, price_id,
                  {sums}
             FROM moved GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
           ON CONFLICT (day, provider, model, service, feature, tenant, operation, status,
               price_id)
           DO UPDATE SET {ROLLUP_ADD}
           RETURNING 1
         )
         SELECT (SELECT count(*) FROM moved) + 0 * (SELECT count(*) FROM a)
                + 0 * (SELECT count(*) FROM b)"
    ))
    .bind(limit)
    .fetch_one(&mut *db)
    .await?;
    let traces: i64 = sqlx::query_scalar(
        "WITH moved AS (
           DELETE FROM llm_trace_delta
            WHERE ctid = ANY(ARRAY(SELECT ctid FROM llm_trace_delta LIMIT $1))
           RETURNING *
         ), a AS (
           INSERT INTO llm_traces AS t (trace_id, first_at, day, last_at, last_day, service,
               calls, cost)
           SELECT trace_id, min(first_at), min(day), max(last_at), max(last_day), min(service),
                  sum(calls), sum(cost)
             FROM moved GROUP BY trace_id
           ON CONFLICT (trace_id) DO UPDATE SET first_at = least(t.first_at, EXCLUDED.first_at),
               day = least(t.day, EXCLUDED.day), last_at = greatest(t.last_at, EXCLUDED.last_at),
               last_day = greatest(t.last_day, EXCLUDED.last_day),
               service = least(t.service, EXCLUDED.service),
               calls = t.calls + EXCLUDED.calls, cost = t.cost + EXCLUDED.cost
           RETURNING 1
         )
         SELECT (SELECT count(*) FROM moved) + 0 * (SELECT count(*) FROM a)",
    )
    .bind(limit)
    .fetch_one(&mut *db)
    .await?;
    Ok(rollups.max(traces))
}

/// Recomputes the trace costs of `trace_ids` from their records (after re-pricing them);
/// their unfolded deltas go (the records hold them). Call in a transaction holding the fold
/// lock.
pub async fn rebuild_traces(db: &mut sqlx::PgConnection, trace_ids: &[String]) -> sqlx::Result<()> {
    if trace_ids.is_empty() {
        return Ok(());
    }
    for table in ["llm_trace_delta", "llm_traces"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE trace_id = ANY($1)"))
            .bind(trace_ids)
            .execute(&mut *db)
            .await?;
    }
    sqlx::query(
        "INSERT INTO llm_traces (trace_id, first_at, day, last_at, last_day, service, calls, cost)
         SELECT trace_id, min(started_at),
                ((min(started_at) + make_interval(secs => (SELECT offset_secs FROM llm_rollup_zone)))
                    AT TIME ZONE 'UTC')::date,
                max(started_at),
                ((max(started_at) + make_interval(secs => (SELECT offset_secs FROM llm_rollup_zone)))
                    AT TIME ZONE 'UTC')::date,
                min(service), count(*), sum(cost)
           FROM llm_usage
          WHERE trace_id = ANY($1) AND cost IS NOT NULL
          GROUP BY trace_id",
    )
    .bind(trace_ids)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Moves the daily rollups to the zone `offset_secs` (a whole-hour offset): when it differs
/// from the one they were built in, rebuilds them all from the hourly rollups, with ingest
/// held off meanwhile (the caller's transaction holds the price book's exclusive lock).
/// Returns whether it rebuilt.
pub async fn set_rollup_zone(db: &mut sqlx::PgConnection, offset_secs: i32) -> sqlx::Result<bool> {
    sqlx::query(FOLD_LOCK).execute(&mut *db).await?;
    let current: i32 = sqlx::query_scalar("SELECT offset_secs FROM llm_rollup_zone FOR UPDATE")
        .fetch_one(&mut *db)
        .await?;
    if current == offset_secs {
        return Ok(false);
    }
    sqlx::query("UPDATE llm_rollup_zone SET offset_secs = $1")
        .bind(offset_secs)
        .execute(&mut *db)
        .await?;
    sqlx::query("TRUNCATE llm_usage_daily, llm_usage_daily_tenant, llm_rollup_delta")
        .execute(&mut *db)
        .await?;
    // Trace deltas folded first (their day is in the old zone), then every trace re-dated.
    loop {
        if fold_deltas(&mut *db, 100_000).await? < 100_000 {
            break;
        }
    }
    sqlx::query(
        "UPDATE llm_traces
            SET day = ((first_at + make_interval(secs => $1)) AT TIME ZONE 'UTC')::date,
                last_day = ((last_at + make_interval(secs => $1)) AT TIME ZONE 'UTC')::date",
    )
    .bind(f64::from(offset_secs))
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "UPDATE llm_fallback_chains
            SET day = ((answered_at + make_interval(secs => $1)) AT TIME ZONE 'UTC')::date",
    )
    .bind(f64::from(offset_secs))
    .execute(&mut *db)
    .await?;
    let range: (Option<OffsetDateTime>, Option<OffsetDateTime>) =
        sqlx::query_as("SELECT min(hour), max(hour) FROM llm_usage_hourly")
            .fetch_one(&mut *db)
            .await?;
    if let (Some(a), Some(b)) = range {
        rebuild_daily(db, a, b + time::Duration::hours(1), None).await?;
    }
    Ok(true)
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

/// A trace's part of a review: `(trace id, service, priced calls, cost)`.
pub type TraceTotal = (String, String, i64, Decimal);

fn trace_totals(rows: &[sqlx::postgres::PgRow]) -> sqlx::Result<Vec<TraceTotal>> {
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

/// The most expensive traces in `[from, to)` among the calls matching `filters`. Unfiltered,
/// from the trace costs (a trace belongs to the day of its first call; days
/// `[first_day, last_day)` of the rollup zone): each day's top `limit` by index, plus the
/// traces with unfolded deltas, summed exactly. Filtered (the matching calls of the week, summed
/// per trace): by [`walk_top_traces`] when its walk ends soon, else by grouping the week's
/// matching records — the same answer either way, read in one snapshot.
pub async fn top_traces(
    pool: &sqlx::PgPool,
    (from, to): (OffsetDateTime, OffsetDateTime),
    (first_day, last_day): (Date, Date),
    filters: &[(String, String)],
    limit: i64,
) -> sqlx::Result<Vec<TraceTotal>> {
    let (more, values) = filter_sql(filters, 4);
    if values.is_empty() {
        let rows = sqlx::query(
            "WITH cand AS (
               SELECT t.trace_id
                 FROM generate_series($1::date, $2::date - 1, interval '1 day') AS g(d)
                CROSS JOIN LATERAL (SELECT trace_id FROM llm_traces WHERE day = g.d::date
                                     ORDER BY cost DESC, trace_id COLLATE \"C\" LIMIT $3) t
               UNION
               SELECT trace_id FROM llm_trace_delta
             ), sums AS (
               SELECT trace_id, min(day) AS day, min(service) AS service, sum(calls) AS calls,
                      sum(cost) AS cost
                 FROM (SELECT trace_id, day, service, calls, cost FROM llm_traces
                        WHERE trace_id = ANY(ARRAY(SELECT trace_id FROM cand))
                       UNION ALL
                       SELECT trace_id, day, service, calls, cost FROM llm_trace_delta) x
                GROUP BY trace_id
             )
             SELECT trace_id, service, calls::int8 AS calls, cost FROM sums
              WHERE day >= $1 AND day < $2
              ORDER BY cost DESC, trace_id COLLATE \"C\" LIMIT $3",
        )
        .bind(first_day)
        .bind(last_day)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        return trace_totals(&rows);
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    if let Some(found) =
        walk_top_traces(&mut tx, (from, to), (first_day, last_day), filters, limit).await?
    {
        return Ok(found);
    }
    let grouped = format!(
        "SELECT trace_id, min(service) AS service, count(*)::int8 AS calls, sum(cost) AS cost
           FROM llm_usage
          WHERE started_at >= $1 AND started_at < $2 AND trace_id IS NOT NULL
            AND cost IS NOT NULL{more}
          GROUP BY trace_id ORDER BY sum(cost) DESC, trace_id COLLATE \"C\" LIMIT $3"
    );
    let mut q = sqlx::query_as::<_, TraceTotal>(&grouped)
        .bind(from)
        .bind(to)
        .bind(limit);
    for v in values {
        q = q.bind(v);
    }
    q.fetch_all(&mut *tx).await
}

/// Traces read per step of [`walk_top_traces`], and the steps it may take before it gives up.
const WALK_STEP: i64 = 256;
const WALK_STEPS: usize = 4;
/// Traces that must be looked at whatever their cost (unfolded, or begun before the days
/// walked) beyond which the walk gives up at once.
const WALK_SURE_MAX: usize = 5_000;

/// A filtered review's top traces without grouping the week's records, when that ends soon.
///
/// A trace's matching cost in the week is part of its cost (costs are never negative), so the
/// traces begun on the week's days `[first_day, last_day)` are walked from the trace costs,
/// dearest first (ties by trace id, in byte order), each step's traces summed exactly from their
/// records (trace index, matching calls in `[from, to)` only). The walk stops once the
/// `limit`-th matching cost ranks above every trace not yet read (costs more than the last
/// read, or as much and an earlier trace id): nothing left can rank. Read with it, whatever
/// their cost: the traces with unfolded deltas (their folded cost is short) and those begun
/// before the week with a call on or after its first day (the partial index of traces spanning
/// days). `None` when the walk would not end soon — the filter matches fewer than `limit` of
/// the first step's traces, or `WALK_STEPS` steps were not enough — when too many traces must
/// be read regardless, or when the trace costs are dated in another zone than the week's:
/// the caller groups the week's records instead. Call in a REPEATABLE READ transaction: the
/// bound needs one snapshot.
pub async fn walk_top_traces(
    tx: &mut sqlx::PgConnection,
    (from, to): (OffsetDateTime, OffsetDateTime),
    (first_day, last_day): (Date, Date),
    filters: &[(String, String)],
    limit: i64,
) -> sqlx::Result<Option<Vec<TraceTotal>>> {
    let (more, values) = filter_sql(filters, 4);
    let limit_n = usize::try_from(limit).unwrap_or(0);
    // The trace costs are dated in the rollup zone; walking the week's days needs it to be the
    // review's.
    let zone: i32 = sqlx::query_scalar("SELECT offset_secs FROM llm_rollup_zone")
        .fetch_one(&mut *tx)
        .await?;
    if zone != from.offset().whole_seconds() {
        return Ok(None);
    }
    let sure: Vec<String> = sqlx::query_scalar(
        "SELECT trace_id FROM llm_trace_delta
         UNION
         SELECT trace_id FROM llm_traces WHERE last_day > day AND last_day >= $1 AND day < $1",
    )
    .bind(first_day)
    .fetch_all(&mut *tx)
    .await?;
    if sure.len() > WALK_SURE_MAX {
        return Ok(None);
    }
    let matching = format!(
        "SELECT trace_id, min(service) AS service, count(*)::int8 AS calls, sum(cost) AS cost
           FROM llm_usage
          WHERE trace_id = ANY($3) AND started_at >= $1 AND started_at < $2
            AND cost IS NOT NULL{more}
          GROUP BY trace_id"
    );
    if limit_n == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut found: Vec<TraceTotal> = Vec::new();
    let mut seen: std::collections::HashSet<String> = sure.iter().cloned().collect();
    let mut ids = sure;
    // The walk's position: the last trace read, in (cost descending, trace id) order; every
    // trace not read costs at most `bound` (None: none is left).
    let mut after: (Decimal, String) = (Decimal::MAX, String::new());
    let mut bound = Some(Decimal::MAX);
    let mut steps = 0;
    loop {
        if !ids.is_empty() {
            let mut q = sqlx::query(&matching).bind(from).bind(to).bind(&ids);
            for v in &values {
                q = q.bind(v);
            }
            found.extend(trace_totals(&q.fetch_all(&mut *tx).await?)?);
            found.sort_by(|a, b| {
                b.3.cmp(&a.3)
                    .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
            });
            found.truncate(limit_n);
        }
        // A trace not read costs at most `bound`, and one costing exactly that comes after the
        // last read in trace id order: it cannot rank above a found trace that precedes it.
        let settled = |kth: &TraceTotal, b: Decimal| {
            kth.3 > b || (kth.3 == b && kth.0.as_bytes() < after.1.as_bytes())
        };
        match bound {
            None => return Ok(Some(found)),
            Some(b) if found.len() == limit_n && settled(&found[limit_n - 1], b) => {
                return Ok(Some(found));
            }
            Some(_) => {}
        }
        if steps == WALK_STEPS || (steps == 1 && found.len() < limit_n) {
            return Ok(None);
        }
        let next: Vec<(String, Decimal)> = sqlx::query_as(
            "SELECT t.trace_id, t.cost
               FROM generate_series($1::date, $2::date - 1, interval '1 day') AS g(d)
              CROSS JOIN LATERAL (
                    SELECT trace_id, cost FROM llm_traces
                     WHERE day = g.d::date AND cost <= $3
                       AND (cost < $3 OR trace_id COLLATE \"C\" > $4)
                     ORDER BY cost DESC, trace_id COLLATE \"C\" LIMIT $5) t
              ORDER BY t.cost DESC, t.trace_id COLLATE \"C\" LIMIT $5",
        )
        .bind(first_day)
        .bind(last_day)
        .bind(after.0)
        .bind(&after.1)
        .bind(WALK_STEP)
        .fetch_all(&mut *tx)
        .await?;
        steps += 1;
        bound = match next.last() {
            Some(last) if next.len() == usize::try_from(WALK_STEP).unwrap_or(0) => {
                after = (last.1, last.0.clone());
                Some(last.1)
            }
            _ => None,
        };
        ids = next
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| seen.insert(id.clone()))
            .collect();
    }
}

/// One attempt of a request that failed over: a call under a parent span with a failed call.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub trace_id: String,
    pub parent: String,
    pub started_at: OffsetDateTime,
    pub service: String,
    pub feature: String,
    pub tenant: String,
    pub operation: String,
    pub provider: String,
    pub model: String,
    pub service_tier: String,
    pub ok: bool,
    pub tokens: Buckets,
    pub cost: Option<Decimal>,
}

/// Takes up to `limit` failed calls queued at least `min_age_secs` ago off the chain queue:
/// `(trace id, parent span id, started at)`.
pub async fn take_pending_chains(
    db: impl PgExecutor<'_>,
    min_age_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<(String, String, OffsetDateTime)>> {
    sqlx::query_as(
        "DELETE FROM llm_chain_pending
          WHERE ctid = ANY(ARRAY(SELECT ctid FROM llm_chain_pending
                                  WHERE queued_at <= now() - make_interval(secs => $1)
                                  ORDER BY queued_at LIMIT $2))
         RETURNING trace_id, parent_span_id, started_at",
    )
    .bind(min_age_secs)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// `(trace id, parent span id, started at)` keys as three columns, for `UNNEST`.
fn key_columns(
    keys: &[(String, String, OffsetDateTime)],
) -> (Vec<String>, Vec<String>, Vec<OffsetDateTime>) {
    let mut cols = (
        Vec::with_capacity(keys.len()),
        Vec::with_capacity(keys.len()),
        Vec::with_capacity(keys.len()),
    );
    for (t, p, s) in keys {
        cols.0.push(t.clone());
        cols.1.push(p.clone());
        cols.2.push(*s);
    }
    cols
}

/// Queues failed calls for chain resolution (at ingest, and again when their chain had not
/// answered yet). Queuing one twice is harmless: resolving a chain replaces its summary.
pub async fn requeue_chains(
    db: impl PgExecutor<'_>,
    keys: &[(String, String, OffsetDateTime)],
) -> sqlx::Result<()> {
    let (t, p, s) = key_columns(keys);
    sqlx::query(
        "INSERT INTO llm_chain_pending (trace_id, parent_span_id, started_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])",
    )
    .bind(t)
    .bind(p)
    .bind(s)
    .execute(db)
    .await?;
    Ok(())
}

/// Queues the failed calls of `trace_ids` (their chains are priced again after re-pricing).
pub async fn requeue_traces(db: impl PgExecutor<'_>, trace_ids: &[String]) -> sqlx::Result<()> {
    if trace_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO llm_chain_pending (trace_id, parent_span_id, started_at, queued_at)
         SELECT trace_id, parent_span_id, started_at, now() - interval '1 hour'
           FROM llm_usage
          WHERE trace_id = ANY($1) AND status = 'error' AND parent_span_id IS NOT NULL",
    )
    .bind(trace_ids)
    .execute(db)
    .await?;
    Ok(())
}

/// Every call under the parent spans of `keys` (failed calls), within an hour of the
/// failure, ordered by trace, parent and start: one lookup per key through the trace index
/// (`OFFSET 0` keeps the planner from turning it into a scan; the hour around the failure,
/// as plain bounds, lets each lookup skip the other days' partitions).
pub async fn chain_attempts(
    db: impl PgExecutor<'_>,
    keys: &[(String, String, OffsetDateTime)],
) -> sqlx::Result<Vec<Attempt>> {
    let (t, p, s) = key_columns(keys);
    sqlx::query(
        "WITH e AS (
           SELECT trace_id, parent_span_id, min(started_at) - interval '1 hour' AS lo,
                  max(started_at) + interval '1 hour' AS hi
             FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])
                  AS k(trace_id, parent_span_id, started_at)
            GROUP BY trace_id, parent_span_id
         )
         SELECT u.trace_id, u.parent_span_id, u.started_at, u.service, u.feature, u.tenant,
                u.operation, u.provider, u.model, u.service_tier, u.status = 'ok' AS ok,
                u.input, u.cache_read, u.cache_write_5m, u.cache_write_1h, u.output, u.reasoning,
                u.cost
           FROM e CROSS JOIN LATERAL (
                  SELECT * FROM llm_usage u
                   WHERE u.trace_id = e.trace_id AND u.parent_span_id = e.parent_span_id
                     AND u.started_at >= e.lo AND u.started_at < e.hi
                  OFFSET 0) u
          ORDER BY u.trace_id, u.parent_span_id, u.started_at",
    )
    .bind(t)
    .bind(p)
    .bind(s)
    .fetch_all(db)
    .await?
    .iter()
    .map(|r| {
        Ok(Attempt {
            trace_id: r.try_get("trace_id")?,
            parent: r.try_get("parent_span_id")?,
            started_at: r.try_get("started_at")?,
            service: r.try_get("service")?,
            feature: r.try_get("feature")?,
            tenant: r.try_get("tenant")?,
            operation: r.try_get("operation")?,
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

/// A fallback chain, summarised: what answered and what the fallback cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainRow {
    pub trace_id: String,
    pub parent: String,
    pub answered_at: OffsetDateTime,
    pub service: String,
    pub feature: String,
    pub tenant: String,
    pub operation: String,
    pub first: (String, String),
    pub answer: (String, String),
    pub attempts: i32,
    pub failed_cost: Decimal,
    pub pricier_cost: Decimal,
}

/// Stores the chains (replacing earlier summaries of the same parent spans) and removes the
/// summaries of `gone` (parent spans that are not chains, or no longer).
pub async fn store_chains(
    db: &mut sqlx::PgConnection,
    chains: &[ChainRow],
    gone: &[(String, String)],
) -> sqlx::Result<()> {
    if !gone.is_empty() {
        let (t, p): (Vec<_>, Vec<_>) = gone.iter().cloned().unzip();
        sqlx::query(
            "DELETE FROM llm_fallback_chains c USING UNNEST($1::text[], $2::text[]) AS g(t, p)
              WHERE c.trace_id = g.t AND c.parent_span_id = g.p",
        )
        .bind(t)
        .bind(p)
        .execute(&mut *db)
        .await?;
    }
    if chains.is_empty() {
        return Ok(());
    }
    macro_rules! col {
        ($f:expr) => {
            chains.iter().map($f).collect::<Vec<_>>()
        };
    }
    sqlx::query(
        "INSERT INTO llm_fallback_chains AS c (trace_id, parent_span_id, answered_at, day,
             service, feature, tenant, operation, first_provider, first_model, answer_provider,
             answer_model, attempts, failed_cost, pricier_cost)
         SELECT t, p, a, ((a + make_interval(secs => (SELECT offset_secs FROM llm_rollup_zone)))
                            AT TIME ZONE 'UTC')::date,
                s, f, te, o, fp, fm, ap, am, n, fc, pc
           FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                       $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                       $12::int4[], $13::numeric[], $14::numeric[])
                AS x(t, p, a, s, f, te, o, fp, fm, ap, am, n, fc, pc)
         ON CONFLICT (trace_id, parent_span_id) DO UPDATE SET answered_at = EXCLUDED.answered_at,
             day = EXCLUDED.day, service = EXCLUDED.service, feature = EXCLUDED.feature,
             tenant = EXCLUDED.tenant, operation = EXCLUDED.operation,
             first_provider = EXCLUDED.first_provider, first_model = EXCLUDED.first_model,
             answer_provider = EXCLUDED.answer_provider, answer_model = EXCLUDED.answer_model,
             attempts = EXCLUDED.attempts, failed_cost = EXCLUDED.failed_cost,
             pricier_cost = EXCLUDED.pricier_cost",
    )
    .bind(col!(|c| c.trace_id.clone()))
    .bind(col!(|c| c.parent.clone()))
    .bind(col!(|c| c.answered_at))
    .bind(col!(|c| c.service.clone()))
    .bind(col!(|c| c.feature.clone()))
    .bind(col!(|c| c.tenant.clone()))
    .bind(col!(|c| c.operation.clone()))
    .bind(col!(|c| c.first.0.clone()))
    .bind(col!(|c| c.first.1.clone()))
    .bind(col!(|c| c.answer.0.clone()))
    .bind(col!(|c| c.answer.1.clone()))
    .bind(col!(|c| c.attempts))
    .bind(col!(|c| c.failed_cost))
    .bind(col!(|c| c.pricier_cost))
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The week's fallback chains per feature and chain (first choice → what answered), among
/// those whose answering call matches `filters` (provider and model: the answering one's):
/// `(feature, chain, count, failed cost, pricier cost)`.
pub async fn chain_groups(
    db: impl PgExecutor<'_>,
    from: Date,
    to: Date,
    filters: &[(String, String)],
) -> sqlx::Result<Vec<(String, String, i64, Decimal, Decimal)>> {
    let filters: Vec<(String, String)> = filters
        .iter()
        .map(|(k, v)| {
            let k = match k.as_str() {
                "provider" => "answer_provider",
                "model" => "answer_model",
                other => other,
            };
            (k.to_string(), v.clone())
        })
        .collect();
    let mut sql = String::new();
    let mut values = Vec::new();
    for (k, v) in &filters {
        if [
            "answer_provider",
            "answer_model",
            "service",
            "feature",
            "tenant",
            "operation",
        ]
        .contains(&k.as_str())
        {
            sql.push_str(&format!(" AND {k} = ${}", 3 + values.len()));
            values.push(v.clone());
        }
    }
    let q = format!(
        "SELECT feature,
                first_provider || ' ' || first_model || ' → ' || answer_provider || ' '
                    || answer_model AS chain,
                count(*)::int8 AS n, sum(failed_cost) AS failed, sum(pricier_cost) AS pricier
           FROM llm_fallback_chains
          WHERE day >= $1 AND day < $2{sql}
          GROUP BY 1, 2"
    );
    let mut q = sqlx::query_as(&q).bind(from).bind(to);
    for v in values {
        q = q.bind(v);
    }
    q.fetch_all(db).await
}
