//! LLM usage: ingest (pricing at arrival, idempotent, rollups in the same transaction), the
//! default price book, and the weekly review read from the rollups (docs/llm-costs.md).

use crate::accounts::{Principal, Role};
use crate::costs::{
    CostChange, CostReview, CostRow, CostTotals, DIMENSIONS, FallbackRow, TraceCall, TraceCost,
    TrendPoint, WeekReview,
};
use crate::error::{DomainError, DomainResult};
use crate::llm::explain::{Cell, CellWeek, Effects, decompose, to_cents, to_places};
use crate::llm::prices::{self, BucketCosts, Price};
use crate::storage::llm::{self as store, NewPrice, RollupRow, UsageRow};
use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::{Date, Duration, OffsetDateTime, UtcOffset, Weekday};

/// The outcome of one ingest batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestResult {
    /// Records new to Lookout, now committed.
    pub stored: i64,
    /// Records already stored (a retried export): acknowledged, not counted again.
    pub duplicates: i64,
    /// Spans refused, with the first few reasons.
    pub rejected: i64,
    pub messages: Vec<String>,
}

/// How far back and ahead a call may be dated.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub retention_days: i64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            retention_days: 400,
        }
    }
}

/// Prices and stores `rows` (already validated by the extraction), refusing calls dated
/// outside the retention window. Acknowledge only after this returns: the records are
/// committed.
pub async fn ingest(
    pool: &PgPool,
    who: &Principal,
    rows: Vec<UsageRow>,
    result: IngestResult,
    window: Window,
) -> DomainResult<IngestResult> {
    if !who.ingest {
        return Err(DomainError::forbidden(
            "only an ingest token may send usage (create one in Settings → API tokens)",
        ));
    }
    store_rows(pool, rows, result, window).await
}

/// Stores checked rows: the window, pricing under the price book's lock, partitions, one
/// statement for the rows and their rollups. Callers check who may write.
pub(crate) async fn store_rows(
    pool: &PgPool,
    rows: Vec<UsageRow>,
    mut result: IngestResult,
    window: Window,
) -> DomainResult<IngestResult> {
    let now = OffsetDateTime::now_utc();
    let oldest = now - Duration::days(window.retention_days);
    let newest = now + Duration::days(1);
    let mut keep = Vec::with_capacity(rows.len());
    for r in rows {
        if r.started_at < oldest || r.started_at > newest {
            result.rejected += 1;
            if result.messages.len() < 5 {
                result.messages.push(format!(
                    "span {}: start time {} is outside the accepted window (the last {} days to tomorrow)",
                    r.span_id.as_deref().unwrap_or(&r.record_id),
                    r.started_at.date(),
                    window.retention_days
                ));
            }
            continue;
        }
        keep.push(r);
    }
    if keep.is_empty() {
        return Ok(result);
    }
    let days: BTreeSet<Date> = keep
        .iter()
        .map(|r| r.started_at.to_offset(UtcOffset::UTC).date())
        .collect();
    let mut conn = pool.acquire().await?;
    for d in days {
        store::ensure_partition(&mut conn, d).await?;
    }
    // Concurrent batches updating the same rollup rows can deadlock; PostgreSQL aborts one,
    // which is then retried (nothing of it was written).
    let mut attempt = 0;
    let stored = loop {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        // Priced inside the transaction, under the price book's shared lock: a price change
        // (which re-prices what is stored) waits for this batch, or this batch for it.
        sqlx::query(super::llm_prices::PRICE_LOCK)
            .execute(&mut *tx)
            .await?;
        let book = store::live_prices(&mut *tx).await?;
        for r in &mut keep {
            price_row(&book, r);
        }
        match store::insert_usage(&mut *tx, &keep).await {
            Ok(n) => {
                // Failed calls under a parent span: queued for fallback-chain resolution (a
                // separate statement, only when there are any: most batches have none).
                let failed: Vec<(String, String, OffsetDateTime)> = keep
                    .iter()
                    .filter(|r| !r.ok)
                    .filter_map(|r| {
                        Some((r.trace_id.clone()?, r.parent_span_id.clone()?, r.started_at))
                    })
                    .collect();
                if !failed.is_empty() {
                    store::requeue_chains(&mut *tx, &failed).await?;
                }
                tx.commit().await?;
                break n;
            }
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("40P01") && attempt < 5 =>
            {
                attempt += 1;
                drop(tx);
                tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    result.stored += stored;
    result.duplicates += keep.len() as i64 - stored;
    Ok(result)
}

/// Prices one call against the book (unpriced when no price applies).
pub fn price_row(book: &[Price], r: &mut UsageRow) {
    let p = prices::find(
        book,
        &r.provider,
        &r.model,
        &r.service_tier,
        r.started_at,
        r.buckets.prompt(),
    );
    r.price_id = p.map(|p| p.id);
    r.cost = p.map(|p| p.rates.cost(&r.buckets).total());
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultPrice {
    provider: String,
    model: String,
    from: Date,
    #[serde(default)]
    min_prompt_tokens: i64,
    input: Decimal,
    #[serde(default)]
    cache_read: Option<Decimal>,
    #[serde(default)]
    cache_write_5m: Option<Decimal>,
    #[serde(default)]
    cache_write_1h: Option<Decimal>,
    output: Decimal,
    #[serde(default)]
    reasoning: Option<Decimal>,
    source: String,
}

const DEFAULT_PRICES: &str = include_str!("../llm/default_prices.json");

/// The prices Lookout ships (each with its source and date).
pub fn default_prices() -> Result<Vec<(Price, String)>, String> {
    let list: Vec<DefaultPrice> =
        serde_json::from_str(DEFAULT_PRICES).map_err(|e| format!("default_prices.json: {e}"))?;
    Ok(list
        .into_iter()
        .map(|d| {
            (
                Price {
                    id: 0,
                    provider: d.provider,
                    model: d.model,
                    service_tier: "default".into(),
                    min_prompt_tokens: d.min_prompt_tokens,
                    effective_from: d.from.midnight().assume_utc(),
                    rates: prices::Rates {
                        input: d.input,
                        cache_read: d.cache_read,
                        cache_write_5m: d.cache_write_5m,
                        cache_write_1h: d.cache_write_1h,
                        output: d.output,
                        reasoning: d.reasoning,
                    },
                },
                d.source,
            )
        })
        .collect())
}

/// Fills an empty price book with the default prices (at start; a book with any row, even a
/// retired one, is the operators' and left alone).
pub async fn seed_default_prices(pool: &PgPool) -> DomainResult<usize> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('llm_prices seed'))")
        .execute(&mut *tx)
        .await?;
    if store::price_count(&mut *tx).await? > 0 {
        return Ok(0);
    }
    let list = default_prices().map_err(DomainError::internal)?;
    for (p, source) in &list {
        store::insert_price(&mut *tx, &NewPrice { price: p, source }, None).await?;
    }
    tx.commit().await?;
    Ok(list.len())
}

/// Puts the daily rollups the review reads in the zone of `offset` (the review's zone,
/// `LOOKOUT_LLM_WEEK_OFFSET`), rebuilding them from the hourly rollups when they were built in
/// another one; ingest and price changes wait meanwhile. Called at startup. Returns whether
/// it rebuilt.
pub async fn set_rollup_zone(pool: &PgPool, offset: UtcOffset) -> DomainResult<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query(super::llm_prices::PRICE_LOCK_EXCLUSIVE)
        .execute(&mut *tx)
        .await?;
    let rebuilt = store::set_rollup_zone(&mut tx, offset.whole_seconds()).await?;
    tx.commit().await?;
    Ok(rebuilt)
}

/// Folds the daily deltas ingest appended into the daily rollups, `batch` at a time until
/// none are left (each batch its own transaction). Returns how many it folded.
pub async fn fold_rollups(pool: &PgPool, batch: i64) -> DomainResult<i64> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let n = store::fold_deltas(&mut tx, batch).await?;
        tx.commit().await?;
        total += n;
        if n < batch {
            return Ok(total);
        }
    }
}

/// Creates partitions for today and the next few days, and drops those past retention.
pub async fn maintain_partitions(pool: &PgPool, window: Window) -> DomainResult<(usize, usize)> {
    let today = OffsetDateTime::now_utc().date();
    let mut conn = pool.acquire().await?;
    let mut created = 0;
    for i in 0..4 {
        store::ensure_partition(&mut conn, today + Duration::days(i)).await?;
        created += 1;
    }
    // Trace costs and fallback chains go with their records' retention.
    let cut = (today - Duration::days(window.retention_days + 1))
        .midnight()
        .assume_utc();
    for sql in [
        "DELETE FROM llm_traces WHERE first_at < $1",
        "DELETE FROM llm_fallback_chains WHERE answered_at < $1",
    ] {
        sqlx::query(sql).bind(cut).execute(&mut *conn).await?;
    }
    let oldest = store::partition_name(today - Duration::days(window.retention_days + 1));
    let mut dropped = 0;
    for name in store::partitions(&mut *conn).await? {
        if name < oldest {
            store::drop_partition(&mut *conn, &name).await?;
            dropped += 1;
        }
    }
    Ok((created, dropped))
}

// ---------------------------------------------------------------------------------------
// The weekly review.

/// `2026-W48` → the Monday starting it.
pub fn parse_week(s: &str) -> DomainResult<Date> {
    let bad = || DomainError::invalid(format!("week: an ISO week like 2026-W48, not {s:?}"));
    let (y, w) = s.trim().split_once("-W").ok_or_else(bad)?;
    let y: i32 = y.parse().map_err(|_| bad())?;
    let w: u8 = w.parse().map_err(|_| bad())?;
    if !(2000..=2200).contains(&y) {
        return Err(bad());
    }
    Date::from_iso_week_date(y, w, Weekday::Monday).map_err(|_| bad())
}

/// The zone weeks start in, as configured: `UTC`, or a whole-hour offset like `+02:00` or
/// `-05:00` (the rollups are hourly, so a week must start on an hour).
pub fn parse_offset(s: &str) -> Result<UtcOffset, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" || t.is_empty() {
        return Ok(UtcOffset::UTC);
    }
    let bad = || format!("a whole-hour UTC offset like +02:00 or -05:00 (or UTC), not {t:?}");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1i8, &t[1..]),
        Some(b'-') => (-1i8, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
    let h: i8 = h.parse().map_err(|_| bad())?;
    if m != "00" || !(0..=14).contains(&h) {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * h, 0, 0).map_err(|_| bad())
}

/// How a zone is shown: `UTC` or `UTC+02:00`.
pub fn zone_name(o: UtcOffset) -> String {
    if o == UtcOffset::UTC {
        "UTC".into()
    } else {
        let (h, _, _) = o.as_hms();
        format!("UTC{}{:02}:00", if h < 0 { '-' } else { '+' }, h.abs())
    }
}

pub fn week_name(monday: Date) -> String {
    let (y, w, _) = monday.to_iso_week_date();
    format!("{y}-W{w:02}")
}

/// What the review shows.
#[derive(Debug, Clone)]
pub struct ReviewQuery {
    /// `None`: the last complete week.
    pub week: Option<String>,
    pub by: Option<String>,
    /// Drill-down filters (dimension → value).
    pub filters: BTreeMap<String, String>,
    /// The zone weeks start in (a fixed offset; whole hours, as the rollups are hourly).
    pub offset: UtcOffset,
}

impl ReviewQuery {
    /// The breakdown's dimension and the week's Monday, once the query is checked (known
    /// dimensions, a whole-hour zone, a real ISO week; no week: the last complete one).
    fn checked(&self) -> DomainResult<(String, Date)> {
        let by = self.by.clone().unwrap_or_else(|| "model".into());
        if !DIMENSIONS.contains(&by.as_str()) {
            return Err(DomainError::invalid(format!(
                "by: one of {}",
                DIMENSIONS.join(", ")
            )));
        }
        for k in self.filters.keys() {
            if !DIMENSIONS.contains(&k.as_str()) {
                return Err(DomainError::invalid(format!(
                    "filter {k}: one of {}",
                    DIMENSIONS.join(", ")
                )));
            }
        }
        if self.offset.minutes_past_hour() != 0 || self.offset.seconds_past_minute() != 0 {
            return Err(DomainError::invalid(
                "the review's zone offset must be whole hours",
            ));
        }
        let monday = match &self.week {
            Some(w) => parse_week(w)?,
            None => {
                let today = OffsetDateTime::now_utc().to_offset(self.offset).date();
                today - Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7)
            }
        };
        Ok((by, monday))
    }

    /// The filters as (dimension, value) pairs, in a fixed order.
    fn filter_pairs(&self) -> Vec<(String, String)> {
        self.filters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Default for ReviewQuery {
    fn default() -> Self {
        ReviewQuery {
            week: None,
            by: None,
            filters: BTreeMap::new(),
            offset: UtcOffset::UTC,
        }
    }
}

pub fn money(d: Decimal) -> String {
    let neg = d.is_sign_negative() && !d.is_zero();
    let a = d.abs();
    let s = if a < Decimal::ONE && !a.is_zero() {
        format!("{:.4}", a.round_dp(4))
    } else {
        let s = format!("{:.2}", a.round_dp(2));
        let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
        let mut grouped = String::new();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{grouped}.{frac}")
    };
    format!("{}${s}", if neg { "−" } else { "" })
}

pub fn signed_money(d: Decimal) -> String {
    if d.is_sign_negative() && !d.is_zero() {
        money(d)
    } else {
        format!("+{}", money(d))
    }
}

fn to_f64(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

fn dim<'a>(r: &'a RollupRow, d: &str) -> &'a str {
    match d {
        "provider" => &r.provider,
        "model" => &r.model,
        "service" => &r.service,
        "feature" => &r.feature,
        "tenant" => &r.tenant,
        _ => &r.operation,
    }
}

/// A rollup row's cost per bucket at the rates of the price that priced it.
fn bucket_costs(r: &RollupRow, rates: &HashMap<i64, prices::Rates>) -> Option<BucketCosts> {
    rates.get(&r.price_id?).map(|x| x.cost(&r.tokens))
}

#[derive(Default, Clone)]
struct Acc {
    priced: CellWeek,
    calls: i64,
    unpriced: i64,
    tokens: crate::llm::tokens::Buckets,
    savings: Decimal,
    failed_calls: i64,
    failed_cost: Decimal,
}

impl Acc {
    fn add(&mut self, r: &RollupRow, costs: Option<BucketCosts>, rates: Option<&prices::Rates>) {
        self.calls += r.calls;
        self.tokens.add(&r.tokens);
        match costs {
            Some(c) => {
                self.priced.add(&CellWeek {
                    calls: r.calls,
                    tokens: r.tokens,
                    cost: c,
                });
                if let Some(x) = rates {
                    self.savings += Decimal::from(r.tokens.cache_read) * (x.input - x.cache_read())
                        / Decimal::from(1_000_000);
                }
                if r.status == "error" {
                    self.failed_cost += c.total();
                }
            }
            None => self.unpriced += r.calls,
        }
        if r.status == "error" {
            self.failed_calls += r.calls;
        }
    }

    fn totals(&self) -> CostTotals {
        let cost = self.priced.cost.total();
        CostTotals {
            cost: money(cost),
            cost_usd: to_f64(cost),
            calls: self.calls,
            unpriced_calls: self.unpriced,
            input: self.tokens.input,
            cache_read: self.tokens.cache_read,
            cache_write: self.tokens.cache_write_5m + self.tokens.cache_write_1h,
            output: self.tokens.output,
            reasoning: self.tokens.reasoning,
            cache_savings: money(self.savings),
            failed_calls: self.failed_calls,
            failed_cost: money(self.failed_cost),
        }
    }
}

fn pct(a: i64, b: i64) -> String {
    if b == 0 {
        "—".into()
    } else {
        format!("{:.0}%", a as f64 * 100.0 / b as f64)
    }
}

/// The sentence explaining one scope's change.
fn sentence(
    scope: &str,
    e: &Effects,
    cells: &[Cell],
    model_of: impl Fn(&str) -> String,
) -> CostChange {
    // Amounts under a dollar are shown to four places, so round them there.
    let c = if e.total.abs() < Decimal::ONE && e.volume.abs() < Decimal::ONE {
        to_places(e, 4)
    } else {
        to_cents(e)
    };
    let n0: i64 = cells.iter().map(|c| c.prev.calls).sum();
    let n1: i64 = cells.iter().map(|c| c.cur.calls).sum();
    let mut parts = Vec::new();
    if !c.volume.is_zero() {
        let d = if n0 > 0 {
            format!(
                "calls {} → {}, {:+.0}%",
                n0,
                n1,
                (n1 - n0) as f64 * 100.0 / n0 as f64
            )
        } else {
            format!("calls 0 → {n1}")
        };
        parts.push(format!("{} volume ({d})", signed_money(c.volume)));
    }
    if !c.mix.is_zero() {
        // The model whose share moved the cost most: its change of share times how far its
        // cost per call is from last week's average (a new, dearer model gaining share
        // explains a rising mix better than the cheap one it displaced).
        let mut by_model: BTreeMap<String, (i64, i64, Decimal)> = BTreeMap::new();
        for cell in cells {
            let e = by_model.entry(model_of(&cell.key)).or_default();
            e.0 += cell.prev.calls;
            e.1 += cell.cur.calls;
            e.2 += cell.prev.cost.total() + cell.cur.cost.total();
        }
        let c0: Decimal = cells.iter().map(|c| c.prev.cost.total()).sum();
        let avg0 = to_f64(c0) / n0.max(1) as f64;
        let score = |(p, q, cost): &(i64, i64, Decimal)| {
            let share = *q as f64 / n1.max(1) as f64 - *p as f64 / n0.max(1) as f64;
            let per_call = to_f64(*cost) / (p + q).max(1) as f64;
            (share * (per_call - avg0)).abs()
        };
        let moved = by_model
            .iter()
            .max_by(|a, b| score(a.1).total_cmp(&score(b.1)).then_with(|| b.0.cmp(a.0)));
        let d = moved
            .map(|(m, (p, q, _))| format!(" ({m} share {} → {})", pct(*p, n0), pct(*q, n1)))
            .unwrap_or_default();
        parts.push(format!("{} mix{d}", signed_money(c.mix)));
    }
    if !c.cache.is_zero() {
        let (mut r0, mut p0, mut r1, mut p1) = (0, 0, 0, 0);
        for cell in cells {
            r0 += cell.prev.tokens.cache_read;
            p0 += cell.prev.tokens.prompt();
            r1 += cell.cur.tokens.cache_read;
            p1 += cell.cur.tokens.prompt();
        }
        parts.push(format!(
            "{} cache (hit rate {} → {})",
            signed_money(c.cache),
            pct(r0, p0),
            pct(r1, p1)
        ));
    }
    if !c.price.is_zero() {
        parts.push(format!("{} price", signed_money(c.price)));
    }
    if !c.tokens.is_zero() {
        let per = |f: fn(&CellWeek) -> i64| {
            let t0: i64 = cells.iter().map(|c| f(&c.prev)).sum();
            let t1: i64 = cells.iter().map(|c| f(&c.cur)).sum();
            (t0 / n0.max(1), t1 / n1.max(1))
        };
        let (a, b) = per(|w| w.tokens.total());
        parts.push(format!(
            "{} tokens per call ({a} → {b})",
            signed_money(c.tokens)
        ));
    }
    let body = if parts.is_empty() {
        "no change".to_string()
    } else {
        parts.join(", ")
    };
    CostChange {
        scope: scope.to_string(),
        total: signed_money(c.total),
        volume: signed_money(c.volume),
        mix: signed_money(c.mix),
        price: signed_money(c.price),
        cache: signed_money(c.cache),
        tokens: signed_money(c.tokens),
        sentence: format!("{scope} {}: {body}", signed_money(c.total)),
    }
}

/// The weekly review: the week against the one before, the explanation, a breakdown, the
/// 13-week trend and the most expensive traces. Reads the hourly rollups (and, for the top
/// traces only, the week's raw rows).
pub async fn review(pool: &PgPool, who: &Principal, q: &ReviewQuery) -> DomainResult<CostReview> {
    who.require(Role::Viewer)?;
    let (by, monday) = q.checked()?;
    let start = |d: Date| d.midnight().assume_offset(q.offset);
    let (from, to) = (start(monday), start(monday + Duration::days(7)));
    let filters: Vec<(String, String)> = q.filter_pairs();
    let with_tenant = by == "tenant" || q.filters.contains_key("tenant");
    let week_after = monday + Duration::days(7);
    let cur: Vec<RollupRow> =
        store::rollups(pool, monday, week_after, with_tenant, &filters).await?;
    let prev: Vec<RollupRow> = store::rollups(
        pool,
        monday - Duration::days(7),
        monday,
        with_tenant,
        &filters,
    )
    .await?;
    let ids: Vec<i64> = cur
        .iter()
        .chain(prev.iter())
        .filter_map(|r| r.price_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rates: HashMap<i64, prices::Rates> = store::prices_by_id(pool, &ids)
        .await?
        .into_iter()
        .map(|p| (p.id, p.rates))
        .collect();

    // Totals and the breakdown.
    let (mut tot0, mut tot1) = (Acc::default(), Acc::default());
    let mut rows: BTreeMap<String, (Acc, Acc)> = BTreeMap::new();
    // Cells for the explanation: (service, model, feature).
    let mut cells: BTreeMap<(String, String, String), Cell> = BTreeMap::new();
    for (week, list) in [(0, &prev), (1, &cur)] {
        for r in list {
            let costs = bucket_costs(r, &rates);
            let x = r.price_id.and_then(|id| rates.get(&id));
            let (t, row) = (
                if week == 0 { &mut tot0 } else { &mut tot1 },
                rows.entry(dim(r, &by).to_string()).or_default(),
            );
            t.add(r, costs, x);
            if week == 0 { &mut row.0 } else { &mut row.1 }.add(r, costs, x);
            if let Some(c) = costs {
                let key = (r.service.clone(), r.model.clone(), r.feature.clone());
                let cell = cells.entry(key.clone()).or_insert_with(|| Cell {
                    key: format!("{}\u{1f}{}\u{1f}{}", key.0, key.1, key.2),
                    prev: CellWeek::default(),
                    cur: CellWeek::default(),
                });
                let w = CellWeek {
                    calls: r.calls,
                    tokens: r.tokens,
                    cost: c,
                };
                if week == 0 {
                    &mut cell.prev
                } else {
                    &mut cell.cur
                }
                .add(&w);
            }
        }
    }
    let model_of = |k: &str| k.split('\u{1f}').nth(1).unwrap_or_default().to_string();
    let all: Vec<Cell> = cells.values().cloned().collect();
    let overall = sentence("all services", &decompose(&all), &all, model_of);
    let mut by_service: BTreeMap<String, Vec<Cell>> = BTreeMap::new();
    for ((s, _, _), c) in &cells {
        by_service.entry(s.clone()).or_default().push(c.clone());
    }
    let mut services: Vec<(Decimal, CostChange)> = by_service
        .iter()
        .map(|(s, list)| {
            let e = decompose(list);
            (e.total.abs(), sentence(s, &e, list, model_of))
        })
        .collect();
    services.sort_by_key(|s| std::cmp::Reverse(s.0));

    let mut out_rows: Vec<CostRow> = rows
        .into_iter()
        .map(|(key, (p, c))| {
            let change = c.priced.cost.total() - p.priced.cost.total();
            let per_call = if c.priced.calls > 0 {
                money(c.priced.cost.total() / Decimal::from(c.priced.calls))
            } else {
                "—".into()
            };
            CostRow {
                key,
                cur: c.totals(),
                prev: p.totals(),
                change: signed_money(change),
                change_usd: to_f64(change),
                cost_per_call: per_call,
            }
        })
        .collect();
    out_rows.sort_by(|a, b| {
        b.cur
            .cost_usd
            .total_cmp(&a.cur.cost_usd)
            .then(a.key.cmp(&b.key))
    });

    // 13 weeks ending with this one.
    let points = store::trend(pool, monday - Duration::days(7 * 12), 13).await?;
    let trend = (0..13)
        .map(|i| {
            let (cost, calls, unpriced) = points
                .iter()
                .find(|p| p.0 == i)
                .map(|p| (p.1, p.2, p.3))
                .unwrap_or_default();
            TrendPoint {
                week: week_name(monday - Duration::days(7 * (12 - i))),
                cost_usd: to_f64(cost),
                cost: money(cost),
                calls,
                unpriced_calls: unpriced,
            }
        })
        .collect();
    let groups = store::chain_groups(pool, monday, week_after, &filters).await?;
    let requests: BTreeMap<String, i64> =
        cur.iter()
            .filter(|r| r.status == "ok")
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.feature.clone()).or_default() += r.calls;
                m
            });
    let fallbacks = fallback_rows(&groups, &requests);
    let top_traces = store::top_traces(pool, (from, to), (monday, week_after), &filters, 20)
        .await?
        .into_iter()
        .map(|(trace_id, service, calls, cost)| TraceCost {
            trace_id,
            service,
            calls,
            cost: money(cost),
        })
        .collect();
    Ok(CostReview {
        week: week_name(monday),
        prev_week: week_name(monday - Duration::days(7)),
        from: from
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        to: to
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        by,
        filters: q.filter_pairs(),
        cur: tot1.totals(),
        prev: tot0.totals(),
        overall,
        services: services.into_iter().map(|(_, c)| c).collect(),
        rows: out_rows,
        trend,
        top_traces,
        fallbacks,
        zone: zone_name(q.offset),
    })
}

/// One parent span's attempts (in start order) as a fallback chain, if one failed and one
/// answered: the failed attempts' cost, and what the answering model cost above the first
/// choice's price for the same tokens (the first choice priced by `book` at the time of the
/// answer; nothing when it has no price or was the cheaper one).
pub fn summarize_chain(chain: &[store::Attempt], book: &[Price]) -> Option<store::ChainRow> {
    let first = chain.first()?;
    let answer = chain.iter().find(|a| a.ok)?;
    if !chain.iter().any(|a| !a.ok) {
        return None;
    }
    let failed = chain
        .iter()
        .filter(|a| !a.ok)
        .filter_map(|a| a.cost)
        .sum::<Decimal>();
    let mut pricier = Decimal::ZERO;
    if let (Some(paid), Some(p)) = (
        answer.cost,
        prices::find(
            book,
            &first.provider,
            &first.model,
            &first.service_tier,
            answer.started_at,
            answer.tokens.prompt(),
        ),
    ) {
        let would = p.rates.cost(&answer.tokens).total();
        if paid > would {
            pricier = paid - would;
        }
    }
    Some(store::ChainRow {
        trace_id: answer.trace_id.clone(),
        parent: answer.parent.clone(),
        answered_at: answer.started_at,
        service: answer.service.clone(),
        feature: answer.feature.clone(),
        tenant: answer.tenant.clone(),
        operation: answer.operation.clone(),
        first: (first.provider.clone(), first.model.clone()),
        answer: (answer.provider.clone(), answer.model.clone()),
        attempts: i32::try_from(chain.len()).unwrap_or(i32::MAX),
        failed_cost: failed,
        pricier_cost: pricier,
    })
}

/// Resolves the queued failed calls (queued at least `min_age` ago, `batch` at a time) into
/// fallback chains: each parent span's attempts looked up, summarised and stored; a failed
/// call nothing has answered yet is queued again while it is less than an hour old (its
/// answer may still arrive). Returns how many failed calls it took.
pub async fn resolve_chains(
    pool: &PgPool,
    min_age: std::time::Duration,
    batch: i64,
) -> DomainResult<usize> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let keys = store::take_pending_chains(&mut *tx, min_age.as_secs_f64(), batch).await?;
        if keys.is_empty() {
            tx.commit().await?;
            return Ok(total);
        }
        let taken = keys.len() as i64;
        total += keys.len();
        let attempts = store::chain_attempts(&mut *tx, &keys).await?;
        let book = store::live_prices(&mut *tx).await?;
        let (mut chains, mut gone) = (Vec::new(), Vec::new());
        let mut answered: BTreeSet<(String, String)> = BTreeSet::new();
        let mut i = 0;
        while i < attempts.len() {
            let (t, p) = (&attempts[i].trace_id, &attempts[i].parent);
            let mut j = i;
            while j < attempts.len() && attempts[j].trace_id == *t && attempts[j].parent == *p {
                j += 1;
            }
            let chain = &attempts[i..j];
            i = j;
            let key = (chain[0].trace_id.clone(), chain[0].parent.clone());
            match summarize_chain(chain, &book) {
                Some(c) => {
                    answered.insert(key);
                    chains.push(c);
                }
                None => gone.push(key),
            }
        }
        let hour_ago = OffsetDateTime::now_utc() - Duration::hours(1);
        let again: Vec<(String, String, OffsetDateTime)> = keys
            .into_iter()
            .filter(|(t, p, at)| !answered.contains(&(t.clone(), p.clone())) && *at > hour_ago)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        store::store_chains(&mut tx, &chains, &gone).await?;
        if !again.is_empty() {
            store::requeue_chains(&mut *tx, &again).await?;
        }
        tx.commit().await?;
        if taken < batch {
            return Ok(total);
        }
    }
}

/// Fallbacks per feature (see [`FallbackRow`]) from the week's chains grouped by feature and
/// chain, and the feature's answered requests.
pub fn fallback_rows(
    groups: &[(String, String, i64, Decimal, Decimal)],
    requests: &BTreeMap<String, i64>,
) -> Vec<FallbackRow> {
    #[derive(Default)]
    struct Acc {
        fell_back: i64,
        failed: Decimal,
        pricier: Decimal,
        chains: BTreeMap<String, i64>,
    }
    let mut by_feature: BTreeMap<String, Acc> = BTreeMap::new();
    for (feature, chain, n, failed, pricier) in groups {
        let acc = by_feature.entry(feature.clone()).or_default();
        acc.fell_back += n;
        acc.failed += failed;
        acc.pricier += pricier;
        *acc.chains.entry(chain.clone()).or_default() += n;
    }
    let mut out: Vec<FallbackRow> = by_feature
        .into_iter()
        .map(|(feature, a)| {
            let requests = requests.get(&feature).copied().unwrap_or(a.fell_back);
            let mut chains: Vec<(String, i64)> = a.chains.into_iter().collect();
            chains.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            let tax = a.failed + a.pricier;
            FallbackRow {
                share: if requests > 0 {
                    (a.fell_back as f64 * 1000.0 / requests as f64).round() / 10.0
                } else {
                    0.0
                },
                feature,
                requests,
                fell_back: a.fell_back,
                chains: chains
                    .into_iter()
                    .map(|(c, n)| format!("{c} ({n})"))
                    .collect(),
                failed_cost: money(a.failed),
                pricier_cost: money(a.pricier),
                tax: money(tax),
                tax_usd: to_f64(tax),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.tax_usd
            .total_cmp(&a.tax_usd)
            .then(a.feature.cmp(&b.feature))
    });
    out
}

// ---------------------------------------------------------------------------------------
// The review record and the exports.

/// The most characters of notes on a week.
pub const NOTES_MAX: usize = 20_000;

/// A week's review record (empty when nobody wrote one).
pub async fn week_review(pool: &PgPool, who: &Principal, week: &str) -> DomainResult<WeekReview> {
    who.require(Role::Viewer)?;
    let monday = parse_week(week)?;
    let week = week_name(monday);
    type Record = (
        String,
        Option<String>,
        Option<OffsetDateTime>,
        String,
        OffsetDateTime,
    );
    let row: Option<Record> = sqlx::query_as(
        "SELECT notes, reviewed_by, reviewed_at, updated_by, updated_at
               FROM llm_week_reviews WHERE week = $1",
    )
    .bind(&week)
    .fetch_optional(pool)
    .await?;
    let t = |x: OffsetDateTime| {
        x.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let can_edit = who.role.allows(Role::Responder);
    Ok(match row {
        None => WeekReview {
            week,
            can_edit,
            ..Default::default()
        },
        Some((notes, by, at, upd_by, upd_at)) => WeekReview {
            week,
            notes,
            reviewed_by: by,
            reviewed_at: at.map(t),
            updated_by: Some(upd_by),
            updated_at: Some(t(upd_at)),
            can_edit,
        },
    })
}

/// Writes the notes on a week and marks it reviewed (or not). Responders and up; the
/// reviewer is recorded with the time, and the change in the audit log.
pub async fn save_week_review(
    pool: &PgPool,
    who: &Principal,
    meta: &crate::accounts::RequestMeta,
    week: &str,
    notes: &str,
    reviewed: bool,
) -> DomainResult<WeekReview> {
    who.require(Role::Responder)?;
    let monday = parse_week(week)?;
    let week_s = week_name(monday);
    if notes.chars().count() > NOTES_MAX {
        return Err(DomainError::invalid(format!(
            "notes: at most {NOTES_MAX} characters"
        )));
    }
    if notes
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(DomainError::invalid("notes: no control characters"));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO llm_week_reviews (week, notes, reviewed_by, reviewed_at, updated_by)
         VALUES ($1, $2, CASE WHEN $3 THEN $4 END, CASE WHEN $3 THEN now() END, $4)
         ON CONFLICT (week) DO UPDATE SET notes = EXCLUDED.notes,
             reviewed_by = CASE WHEN $3 THEN coalesce(llm_week_reviews.reviewed_by, $4) END,
             reviewed_at = CASE WHEN $3 THEN coalesce(llm_week_reviews.reviewed_at, now()) END,
             updated_by = $4, updated_at = now()",
    )
    .bind(&week_s)
    .bind(notes)
    .bind(reviewed)
    .bind(&who.name)
    .execute(&mut *tx)
    .await?;
    crate::storage::audit::append(
        &mut *tx,
        crate::storage::audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "llm.review.save",
            target: &week_s,
            details: serde_json::json!({ "reviewed": reviewed, "notes_chars": notes.chars().count() }),
            meta,
        },
    )
    .await?;
    tx.commit().await?;
    week_review(pool, who, &week_s).await
}

/// A CSV field: quoted, and a leading `=`, `+`, `-`, `@`, tab or CR neutralised with a `'` so
/// a spreadsheet never runs it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The week's usage as CSV, one line per breakdown key × model × price version, with every
/// token bucket and the cost exact (the price version names the price row that priced it;
/// empty = unpriced). The previous week's lines follow, marked by their week.
pub async fn review_csv(pool: &PgPool, who: &Principal, q: &ReviewQuery) -> DomainResult<String> {
    who.require(Role::Viewer)?;
    let (by, monday) = q.checked()?;
    let (from, to, prev_from) = (
        monday,
        monday + Duration::days(7),
        monday - Duration::days(7),
    );
    let (week, prev_week) = (week_name(monday), week_name(monday - Duration::days(7)));
    let mut out = format!(
        "week,{by},model,price_version,status,calls,input_tokens,cache_read_tokens,cache_write_5m_tokens,cache_write_1h_tokens,output_tokens,reasoning_tokens,cost_usd\n"
    );
    for (week, a, b) in [(&week, from, to), (&prev_week, prev_from, from)] {
        type Key = (String, String, Option<i64>, String);
        type Sums = (i64, crate::llm::tokens::Buckets, Decimal);
        let mut groups: BTreeMap<Key, Sums> = BTreeMap::new();
        let filters: Vec<(String, String)> = q.filter_pairs();
        let with_tenant = by == "tenant" || q.filters.contains_key("tenant");
        for row in store::rollups(pool, a, b, with_tenant, &filters).await? {
            let e = groups
                .entry((
                    dim(&row, &by).to_string(),
                    row.model.clone(),
                    row.price_id,
                    row.status.clone(),
                ))
                .or_default();
            e.0 += row.calls;
            e.1.add(&row.tokens);
            e.2 += row.cost;
        }
        for ((key, model, price, status), (calls, t, cost)) in groups {
            out.push_str(&format!(
                "{},{},{},{},{},{calls},{},{},{},{},{},{},{}\n",
                csv_field(week),
                csv_field(&key),
                csv_field(&model),
                price.map(|p| p.to_string()).unwrap_or_default(),
                csv_field(&status),
                t.input,
                t.cache_read,
                t.cache_write_5m,
                t.cache_write_1h,
                t.output,
                t.reasoning,
                if price.is_some() {
                    cost.normalize().to_string()
                } else {
                    String::new()
                },
            ));
        }
    }
    Ok(out)
}

/// A Markdown table cell: pipes and line breaks escaped.
fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// The review as Markdown: the totals, the explanation, the breakdowns by service and by
/// model, the most expensive traces, the notes and who reviewed it.
pub async fn review_markdown(
    pool: &PgPool,
    who: &Principal,
    q: &ReviewQuery,
) -> DomainResult<String> {
    let r = review(pool, who, q).await?;
    let rec = week_review(pool, who, &r.week).await?;
    let by_service = review(
        pool,
        who,
        &ReviewQuery {
            by: Some("service".into()),
            ..q.clone()
        },
    )
    .await?;
    let by_model = review(
        pool,
        who,
        &ReviewQuery {
            by: Some("model".into()),
            ..q.clone()
        },
    )
    .await?;
    let mut md = format!("# LLM cost review {}\n\n", r.week);
    md.push_str(&format!(
        "{} to {} ({}), against {}.",
        &r.from[..10.min(r.from.len())],
        &r.to[..10.min(r.to.len())],
        r.zone,
        r.prev_week
    ));
    if !r.filters.is_empty() {
        let f: Vec<String> = r
            .filters
            .iter()
            .map(|(k, v)| format!("{k} = {}", md_cell(v)))
            .collect();
        md.push_str(&format!(" Filtered: {}.", f.join(", ")));
    }
    md.push_str("\n\n| | This week | Last week |\n|---|---:|---:|\n");
    for (label, a, b) in [
        ("Cost", r.cur.cost.clone(), r.prev.cost.clone()),
        ("Calls", r.cur.calls.to_string(), r.prev.calls.to_string()),
        (
            "Unpriced calls",
            r.cur.unpriced_calls.to_string(),
            r.prev.unpriced_calls.to_string(),
        ),
        (
            "Input tokens (uncached)",
            r.cur.input.to_string(),
            r.prev.input.to_string(),
        ),
        (
            "Cache read tokens",
            r.cur.cache_read.to_string(),
            r.prev.cache_read.to_string(),
        ),
        (
            "Cache write tokens",
            r.cur.cache_write.to_string(),
            r.prev.cache_write.to_string(),
        ),
        (
            "Output tokens",
            r.cur.output.to_string(),
            r.prev.output.to_string(),
        ),
        (
            "Reasoning tokens",
            r.cur.reasoning.to_string(),
            r.prev.reasoning.to_string(),
        ),
        (
            "Cache savings",
            r.cur.cache_savings.clone(),
            r.prev.cache_savings.clone(),
        ),
        (
            "Failed attempts",
            format!("{} ({} calls)", r.cur.failed_cost, r.cur.failed_calls),
            format!("{} ({} calls)", r.prev.failed_cost, r.prev.failed_calls),
        ),
    ] {
        md.push_str(&format!("| {label} | {a} | {b} |\n"));
    }
    md.push_str("\n## Why it changed\n\n");
    md.push_str(&format!("{}\n\n", md_cell(&r.overall.sentence)));
    md.push_str("| Scope | Volume | Mix | Price | Cache | Tokens per call | Total |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for c in std::iter::once(&r.overall).chain(r.services.iter()) {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            md_cell(&c.scope),
            c.volume,
            c.mix,
            c.price,
            c.cache,
            c.tokens,
            c.total
        ));
    }
    for c in &r.services {
        md.push_str(&format!("\n- {}", md_cell(&c.sentence)));
    }
    for (title, rr) in [("By service", &by_service), ("By model", &by_model)] {
        md.push_str(&format!("\n\n## {title}\n\n| {} | Cost | Last week | Change | Calls | Cost per call | Input | Cache read | Cache write | Output | Reasoning | Unpriced |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", rr.by));
        for x in &rr.rows {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                md_cell(&x.key),
                x.cur.cost,
                x.prev.cost,
                x.change,
                x.cur.calls,
                x.cost_per_call,
                x.cur.input,
                x.cur.cache_read,
                x.cur.cache_write,
                x.cur.output,
                x.cur.reasoning,
                x.cur.unpriced_calls
            ));
        }
    }
    if !r.top_traces.is_empty() {
        md.push_str("\n## Most expensive traces\n\n| Trace | Service | LLM calls | Cost |\n|---|---|---:|---:|\n");
        for t in &r.top_traces {
            md.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                t.trace_id,
                md_cell(&t.service),
                t.calls,
                t.cost
            ));
        }
    }
    md.push_str("\n## Review\n\n");
    match (&rec.reviewed_by, &rec.reviewed_at) {
        (Some(by), Some(at)) => md.push_str(&format!("Reviewed by {} at {at}.\n\n", md_cell(by))),
        _ => md.push_str("Not marked reviewed.\n\n"),
    }
    if rec.notes.trim().is_empty() {
        md.push_str("_No notes._\n");
    } else {
        md.push_str(&format!("{}\n", rec.notes.trim_end()));
    }
    Ok(md)
}

/// The LLM calls of one trace, in start order (at most 1000).
pub async fn trace_calls(
    pool: &PgPool,
    who: &Principal,
    trace_id: &str,
) -> DomainResult<Vec<TraceCall>> {
    who.require(Role::Viewer)?;
    let t = trace_id.trim().to_ascii_lowercase();
    if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainError::invalid("trace id: 32 hexadecimal digits"));
    }
    let rows = sqlx::query(
        "SELECT span_id, parent_span_id, started_at, duration_ms, service, feature, tenant, operation,
                provider, model, request_model, status, error_type, input, cache_read,
                cache_write_5m + cache_write_1h AS cache_write, output, reasoning, cost, price_id,
                raw_usage::text AS raw
           FROM llm_usage WHERE trace_id = $1 ORDER BY started_at, span_id LIMIT 1000",
    )
    .bind(&t)
    .fetch_all(pool)
    .await?;
    use sqlx::Row;
    let list = rows
        .iter()
        .map(|r| {
            Ok(TraceCall {
                span_id: r
                    .try_get::<Option<String>, _>("span_id")?
                    .unwrap_or_default(),
                parent_span_id: r.try_get("parent_span_id")?,
                started_at: r
                    .try_get::<OffsetDateTime, _>("started_at")?
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                duration_ms: r.try_get("duration_ms")?,
                service: r.try_get("service")?,
                feature: r.try_get("feature")?,
                tenant: r.try_get("tenant")?,
                operation: r.try_get("operation")?,
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                request_model: r.try_get("request_model")?,
                status: r.try_get("status")?,
                error_type: r.try_get("error_type")?,
                input: r.try_get("input")?,
                cache_read: r.try_get("cache_read")?,
                cache_write: r.try_get("cache_write")?,
                output: r.try_get("output")?,
                reasoning: r.try_get("reasoning")?,
                cost: r
                    .try_get::<Option<Decimal>, _>("cost")?
                    .map(money)
                    .unwrap_or_default(),
                price_version: r.try_get("price_id")?,
                raw_usage: r.try_get("raw")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    if list.is_empty() {
        return Err(DomainError::not_found(format!(
            "no LLM calls recorded in trace {t}"
        )));
    }
    Ok(list)
}

/// Percent-encodes a query-string value.
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_weeks() {
        use rust_decimal_macros::dec;
        assert_eq!(money(dec!(1234567.891)), "$1,234,567.89");
        assert_eq!(money(dec!(0.003618)), "$0.0036");
        assert_eq!(money(dec!(-412)), "−$412.00");
        assert_eq!(money(Decimal::ZERO), "$0.00");
        assert_eq!(signed_money(dec!(61)), "+$61.00");
        assert_eq!(
            parse_week("2026-W48").unwrap(),
            time::macros::date!(2026 - 11 - 23)
        );
        assert_eq!(week_name(time::macros::date!(2026 - 11 - 23)), "2026-W48");
        assert_eq!(week_name(time::macros::date!(2026 - 12 - 28)), "2026-W53");
        assert_eq!(week_name(time::macros::date!(2027 - 01 - 04)), "2027-W01");
        for bad in ["2026-W54", "2026W48", "x", "1900-W01", "2026-W", "2026-W0"] {
            assert!(parse_week(bad).is_err(), "{bad}");
        }
        assert_eq!(default_prices().unwrap().len(), 25);
        for (s, want) in [
            ("UTC", Some(0)),
            ("", Some(0)),
            ("+02:00", Some(2)),
            ("-05:00", Some(-5)),
            ("+2", Some(2)),
            ("+14:00", Some(14)),
        ] {
            assert_eq!(parse_offset(s).map(|o| o.whole_hours()).ok(), want, "{s}");
        }
        for bad in ["+05:30", "+15:00", "Europe/Paris", "2", "+x"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(zone_name(parse_offset("-05:00").unwrap()), "UTC-05:00");
        assert_eq!(zone_name(UtcOffset::UTC), "UTC");
    }
}
