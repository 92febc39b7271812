//! The price book: listing, changing (add rows, retire rows) with a dry run that shows what
//! the change does to the records already stored, re-pricing on apply (records and their
//! rollups, in one transaction), and LiteLLM's `model_prices_and_context_window.json` in and
//! out (docs/llm-costs.md).

use crate::accounts::{Principal, RequestMeta, Role};
use crate::costs::{PriceChangeResult, PriceView, RepriceDiff, RepriceRow};
use crate::error::{DomainError, DomainResult};
use crate::llm::prices::{self, Price, Rates};
use crate::services::llm::{money, signed_money, week_name};
use crate::storage::{audit, llm as store};
use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, BTreeSet};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

/// The advisory lock that orders price changes against ingest: ingest holds it shared while
/// it prices and inserts a batch, a price change exclusively while it re-prices, so no record
/// is priced against a book that is being replaced.
pub const PRICE_LOCK: &str = "SELECT pg_advisory_xact_lock_shared(hashtext('llm_prices'))";
pub(crate) const PRICE_LOCK_EXCLUSIVE: &str =
    "SELECT pg_advisory_xact_lock(hashtext('llm_prices'))";

/// The service tiers a price may be for.
pub const SERVICE_TIERS: [&str; 4] = ["default", "batch", "flex", "priority"];
/// The largest rate accepted, per million tokens (a typo guard: no model costs $10,000/M).
pub const MAX_RATE: i64 = 10_000;

/// A price as written in the API (Lookout's own format; unknown fields are refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub provider: String,
    pub model: String,
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(default)]
    pub min_prompt_tokens: Option<i64>,
    /// RFC 3339, or a date (midnight UTC).
    pub effective_from: String,
    pub input: Decimal,
    #[serde(default)]
    pub cache_read: Option<Decimal>,
    #[serde(default)]
    pub cache_write_5m: Option<Decimal>,
    #[serde(default)]
    pub cache_write_1h: Option<Decimal>,
    pub output: Decimal,
    #[serde(default)]
    pub reasoning: Option<Decimal>,
    #[serde(default)]
    pub source: Option<String>,
}

/// A change to the price book: rows to add, rows to retire (a changed price or date is both).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceChange {
    #[serde(default)]
    pub add: Vec<PriceInput>,
    #[serde(default)]
    pub retire: Vec<i64>,
}

/// A price change as the price book page's form sends it: every field text, empty = not
/// given. `retire` is the id of the row the change replaces (or retires alone when no model
/// is given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceForm {
    pub retire: String,
    pub provider: String,
    pub model: String,
    pub service_tier: String,
    pub min_prompt_tokens: String,
    pub effective_from: String,
    pub input: String,
    pub cache_read: String,
    pub cache_write_5m: String,
    pub cache_write_1h: String,
    pub output: String,
    pub reasoning: String,
    pub source: String,
}

impl PriceForm {
    /// The change the form asks for; a field that is not a number names itself.
    pub fn change(&self) -> DomainResult<PriceChange> {
        fn rate(field: &str, v: &str) -> DomainResult<Option<Decimal>> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.trim_start_matches('$')
                .parse::<Decimal>()
                .map(Some)
                .map_err(|_| {
                    DomainError::invalid(format!(
                        "{field}: dollars per million tokens (like 2.50), not {v:?}"
                    ))
                })
        }
        let some = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        let retire = match self.retire.trim() {
            "" => vec![],
            v => vec![v.parse::<i64>().map_err(|_| {
                DomainError::invalid(format!("retire: the number of a price row, not {v:?}"))
            })?],
        };
        let add = if self.model.trim().is_empty() && self.provider.trim().is_empty() {
            vec![]
        } else {
            let required = |field: &str, v: &str| {
                rate(field, v)?.ok_or_else(|| {
                    DomainError::invalid(format!("{field}: required (dollars per million tokens)"))
                })
            };
            vec![PriceInput {
                provider: self.provider.trim().to_string(),
                model: self.model.trim().to_string(),
                service_tier: some(&self.service_tier),
                min_prompt_tokens: match self.min_prompt_tokens.trim() {
                    "" => None,
                    v => Some(v.replace(['_', ','], "").parse::<i64>().map_err(|_| {
                        DomainError::invalid(format!(
                            "min_prompt_tokens: a whole number of prompt tokens, not {v:?}"
                        ))
                    })?),
                },
                effective_from: self.effective_from.trim().to_string(),
                input: required("input", &self.input)?,
                cache_read: rate("cache_read", &self.cache_read)?,
                cache_write_5m: rate("cache_write_5m", &self.cache_write_5m)?,
                cache_write_1h: rate("cache_write_1h", &self.cache_write_1h)?,
                output: required("output", &self.output)?,
                reasoning: rate("reasoning", &self.reasoning)?,
                source: some(&self.source),
            }]
        };
        Ok(PriceChange { add, retire })
    }
}

fn parse_when(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok().or_else(|| {
        Date::parse(
            s.trim(),
            &time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()
        .map(|d| d.midnight().assume_utc())
    })
}

/// Checks one input and turns it into a price row; the message names the model and field.
pub fn validate(p: &PriceInput) -> Result<(Price, String), String> {
    let name = format!("{} {}", p.provider.trim(), p.model.trim());
    let err = |field: &str, what: &str| format!("{name}: {field}: {what}");
    let provider = crate::llm::spans::canonical_provider(&p.provider);
    if p.provider.trim().is_empty() || p.provider.len() > 100 {
        return Err(err("provider", "1 to 100 characters"));
    }
    if p.model.trim().is_empty() || p.model.len() > 200 || p.model.chars().any(char::is_control) {
        return Err(err(
            "model",
            "1 to 200 characters (an exact name or a pattern with *)",
        ));
    }
    let tier = p.service_tier.clone().unwrap_or_else(|| "default".into());
    if !SERVICE_TIERS.contains(&tier.as_str()) {
        return Err(err(
            "service_tier",
            &format!("one of {}", SERVICE_TIERS.join(", ")),
        ));
    }
    let min = p.min_prompt_tokens.unwrap_or(0);
    if !(0..=10_000_000).contains(&min) {
        return Err(err("min_prompt_tokens", "from 0 to 10000000"));
    }
    let from = parse_when(&p.effective_from)
        .ok_or_else(|| err("effective_from", "an RFC 3339 time or a date (2026-01-31)"))?;
    let year = from.year();
    if !(2000..=2200).contains(&year) {
        return Err(err("effective_from", "a year from 2000 to 2200"));
    }
    let check = |field: &str, v: Option<Decimal>| -> Result<Option<Decimal>, String> {
        match v {
            Some(d) if d.is_sign_negative() && !d.is_zero() => Err(err(field, "not negative")),
            Some(d) if d > Decimal::from(MAX_RATE) => Err(err(
                field,
                &format!("at most {MAX_RATE} dollars per million tokens"),
            )),
            v => Ok(v.map(|d| d.normalize())),
        }
    };
    let rates = Rates {
        input: check("input", Some(p.input))?.unwrap_or_default(),
        cache_read: check("cache_read", p.cache_read)?,
        cache_write_5m: check("cache_write_5m", p.cache_write_5m)?,
        cache_write_1h: check("cache_write_1h", p.cache_write_1h)?,
        output: check("output", Some(p.output))?.unwrap_or_default(),
        reasoning: check("reasoning", p.reasoning)?,
    };
    let source = p.source.clone().unwrap_or_default();
    if source.len() > 500 {
        return Err(err("source", "at most 500 characters"));
    }
    Ok((
        Price {
            id: 0,
            provider,
            model: p.model.trim().to_string(),
            service_tier: tier,
            min_prompt_tokens: min,
            effective_from: from,
            rates,
        },
        source,
    ))
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Every price row, live and retired, newest version first within a model, with how many
/// records each priced.
pub async fn list_prices(pool: &PgPool, who: &Principal) -> DomainResult<Vec<PriceView>> {
    who.require(Role::Viewer)?;
    let rows = sqlx::query(
        "SELECT p.id, p.provider, p.model, p.service_tier, p.min_prompt_tokens, p.effective_from,
                p.input, p.cache_read, p.cache_write_5m, p.cache_write_1h, p.output, p.reasoning,
                p.source, p.created_at, p.retired_at,
                coalesce((SELECT sum(calls) FROM llm_usage_hourly h WHERE h.price_id = p.id), 0)::int8 AS records
           FROM llm_prices p
          ORDER BY p.provider, p.model, p.service_tier, p.min_prompt_tokens, p.effective_from DESC, p.id DESC",
    )
    .fetch_all(pool)
    .await?;
    let d = |r: &sqlx::postgres::PgRow, c: &str| -> sqlx::Result<Option<String>> {
        Ok(r.try_get::<Option<Decimal>, _>(c)?
            .map(|x| x.normalize().to_string()))
    };
    rows.iter()
        .map(|r| {
            Ok(PriceView {
                id: r.try_get("id")?,
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                service_tier: r.try_get("service_tier")?,
                min_prompt_tokens: r.try_get("min_prompt_tokens")?,
                effective_from: fmt_time(r.try_get("effective_from")?),
                input: d(r, "input")?.unwrap_or_default(),
                cache_read: d(r, "cache_read")?,
                cache_write_5m: d(r, "cache_write_5m")?,
                cache_write_1h: d(r, "cache_write_1h")?,
                output: d(r, "output")?.unwrap_or_default(),
                reasoning: d(r, "reasoning")?,
                source: r.try_get("source")?,
                created_at: fmt_time(r.try_get("created_at")?),
                retired_at: r
                    .try_get::<Option<OffsetDateTime>, _>("retired_at")?
                    .map(fmt_time),
                records: r.try_get("records")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(Into::into)
}

fn iso_monday(d: Date) -> Date {
    d - Duration::days(i64::from(d.weekday().number_days_from_monday()))
}

#[derive(Default)]
struct DiffAcc {
    records: i64,
    newly_priced: i64,
    newly_unpriced: i64,
    before: Decimal,
    after: Decimal,
    rows: BTreeMap<(Date, String), (i64, Decimal, Decimal)>,
}

/// Adds and retires price rows and re-prices the stored records they affect, in one
/// transaction; with `dry_run` the transaction is rolled back, so the diff shown is exactly
/// what applying does. Admins only.
pub async fn change_prices(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    change: &PriceChange,
    dry_run: bool,
    ignored: Vec<String>,
) -> DomainResult<PriceChangeResult> {
    who.require(Role::Admin)?;
    if change.add.is_empty() && change.retire.is_empty() {
        return Err(DomainError::invalid(
            "nothing to change: add or retire prices",
        ));
    }
    if change.add.len() > 5000 || change.retire.len() > 5000 {
        return Err(DomainError::invalid(
            "at most 5000 prices to add and 5000 to retire at once",
        ));
    }
    let mut added_rows = Vec::new();
    let mut keys = BTreeSet::new();
    for (i, p) in change.add.iter().enumerate() {
        let (price, source) =
            validate(p).map_err(|m| DomainError::Invalid(format!("add[{i}]: {m}")))?;
        let key = (
            price.provider.clone(),
            price.model.clone(),
            price.service_tier.clone(),
            price.min_prompt_tokens,
            price.effective_from,
        );
        if !keys.insert(key) {
            return Err(DomainError::invalid(format!(
                "add[{i}]: {} {}: the same model, tier and effective date twice in one change",
                price.provider, price.model
            )));
        }
        added_rows.push((price, source));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(PRICE_LOCK_EXCLUSIVE).execute(&mut *tx).await?;
    // Retire first, so a new version may take the retired row's key.
    let retired: Vec<(i64, String, OffsetDateTime)> = sqlx::query_as(
        "UPDATE llm_prices SET retired_at = now() WHERE id = ANY($1) AND retired_at IS NULL
         RETURNING id, provider, effective_from",
    )
    .bind(&change.retire)
    .fetch_all(&mut *tx)
    .await?;
    let unique: BTreeSet<i64> = change.retire.iter().copied().collect();
    if retired.len() != unique.len() {
        let found: BTreeSet<i64> = retired.iter().map(|r| r.0).collect();
        let missing: Vec<String> = unique.difference(&found).map(|i| format!("#{i}")).collect();
        return Err(DomainError::not_found(format!(
            "price {} is unknown or already retired",
            missing.join(", ")
        )));
    }
    let mut added = Vec::new();
    for (price, source) in &added_rows {
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO llm_prices (provider, model, service_tier, min_prompt_tokens, effective_from,
                 input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, source, created_by,
                 replaces)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                 (SELECT max(id) FROM llm_prices WHERE id = ANY($14) AND provider = $1 AND model = $2
                     AND service_tier = $3 AND min_prompt_tokens = $4))
             RETURNING id",
        )
        .bind(&price.provider)
        .bind(&price.model)
        .bind(&price.service_tier)
        .bind(price.min_prompt_tokens)
        .bind(price.effective_from)
        .bind(price.rates.input)
        .bind(price.rates.cache_read)
        .bind(price.rates.cache_write_5m)
        .bind(price.rates.cache_write_1h)
        .bind(price.rates.output)
        .bind(price.rates.reasoning)
        .bind(source)
        .bind(who.user_id)
        .bind(&change.retire)
        .fetch_one(&mut *tx)
        .await;
        match id {
            Ok(id) => added.push(id),
            Err(e) if crate::storage::is_unique_violation(&e) => {
                return Err(DomainError::conflict(format!(
                    "{} {} ({} tier, above {} tokens) already has a live price from {}: retire it in the same change to replace it",
                    price.provider,
                    price.model,
                    price.service_tier,
                    price.min_prompt_tokens,
                    price.effective_from.date()
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Which records a change can touch: of the providers it names, from its earliest date.
    let providers: Vec<String> = added_rows
        .iter()
        .map(|(p, _)| p.provider.clone())
        .chain(retired.iter().map(|r| r.1.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let since = added_rows
        .iter()
        .map(|(p, _)| p.effective_from)
        .chain(retired.iter().map(|r| r.2))
        .min()
        .unwrap_or_else(OffsetDateTime::now_utc);
    let book = store::live_prices(&mut *tx).await?;
    let mut acc = DiffAcc::default();
    let existing: BTreeSet<String> = store::partitions(&mut *tx).await?.into_iter().collect();
    let today = OffsetDateTime::now_utc().date();
    let mut day = since.date().max(today - Duration::days(3660));
    while day <= today + Duration::days(1) {
        if existing.contains(&store::partition_name(day)) {
            reprice_day(&mut tx, &book, &providers, since, day, &mut acc).await?;
        }
        day = day.next_day().unwrap_or(day + Duration::days(1));
    }
    let diff = RepriceDiff {
        records: acc.records,
        newly_priced: acc.newly_priced,
        newly_unpriced: acc.newly_unpriced,
        cost_before: money(acc.before),
        cost_after: money(acc.after),
        change: signed_money(acc.after - acc.before),
        rows: acc
            .rows
            .into_iter()
            .map(|((w, model), (n, b, a))| RepriceRow {
                week: week_name(w),
                model,
                records: n,
                before: money(b),
                after: money(a),
                change: signed_money(a - b),
            })
            .collect(),
        ignored,
    };
    if dry_run {
        tx.rollback().await?;
    } else {
        audit::append(
            &mut *tx,
            audit::NewEntry {
                actor_id: who.user_id,
                actor_name: &who.name,
                action: "llm.prices.change",
                target: &providers.join(", "),
                details: serde_json::json!({
                    "added": added, "retired": change.retire,
                    "records_repriced": diff.records, "cost_before": diff.cost_before,
                    "cost_after": diff.cost_after,
                }),
                meta,
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(PriceChangeResult {
        applied: !dry_run,
        added: if dry_run { Vec::new() } else { added },
        retired: change.retire.clone(),
        diff,
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

/// Re-prices one day's records of `providers` from `since`, and rebuilds that day's rollups
/// of those providers from the records when anything changed.
async fn reprice_day(
    tx: &mut Tx<'_>,
    book: &[Price],
    providers: &[String],
    since: OffsetDateTime,
    day: Date,
    acc: &mut DiffAcc,
) -> DomainResult<()> {
    let from = day.midnight().assume_utc();
    let to = from + Duration::days(1);
    let rows = sqlx::query(
        "SELECT record_id, trace_id, started_at, provider, model, service_tier, input, cache_read,
                cache_write_5m, cache_write_1h, output, reasoning, price_id, cost
           FROM llm_usage
          WHERE started_at >= $1 AND started_at < $2 AND started_at >= $3 AND provider = ANY($4)",
    )
    .bind(from)
    .bind(to)
    .bind(since)
    .bind(providers)
    .fetch_all(&mut **tx)
    .await?;
    let (mut ids, mut starts, mut price_ids, mut costs) = (vec![], vec![], vec![], vec![]);
    let mut traces: BTreeSet<String> = BTreeSet::new();
    for r in &rows {
        let started_at: OffsetDateTime = r.try_get("started_at")?;
        let model: String = r.try_get("model")?;
        let buckets = store::buckets_from_row(r)?;
        let provider: String = r.try_get("provider")?;
        let tier: String = r.try_get("service_tier")?;
        let p = prices::find(book, &provider, &model, &tier, started_at, buckets.prompt());
        let new_id = p.map(|p| p.id);
        let new_cost = p.map(|p| p.rates.cost(&buckets).total());
        let old_id: Option<i64> = r.try_get("price_id")?;
        let old_cost: Option<Decimal> = r.try_get("cost")?;
        if new_id == old_id && new_cost == old_cost {
            continue;
        }
        acc.records += 1;
        match (old_cost, new_cost) {
            (None, Some(_)) => acc.newly_priced += 1,
            (Some(_), None) => acc.newly_unpriced += 1,
            _ => {}
        }
        let (b, a) = (old_cost.unwrap_or_default(), new_cost.unwrap_or_default());
        acc.before += b;
        acc.after += a;
        let e = acc
            .rows
            .entry((iso_monday(started_at.date()), model))
            .or_default();
        e.0 += 1;
        e.1 += b;
        e.2 += a;
        ids.push(r.try_get::<String, _>("record_id")?);
        if let Some(t) = r.try_get::<Option<String>, _>("trace_id")? {
            traces.insert(t);
        }
        starts.push(started_at);
        price_ids.push(new_id);
        costs.push(new_cost);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE llm_usage u SET price_id = x.p, cost = x.c
           FROM UNNEST($1::text[], $2::timestamptz[], $3::int8[], $4::numeric[]) AS x(r, s, p, c)
          WHERE u.record_id = x.r AND u.started_at = x.s",
    )
    .bind(&ids)
    .bind(&starts)
    .bind(&price_ids)
    .bind(&costs)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM llm_usage_hourly WHERE hour >= $1 AND hour < $2 AND provider = ANY($3)",
    )
    .bind(from)
    .bind(to)
    .bind(providers)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO llm_usage_hourly (hour, provider, model, service, feature, tenant, operation,
             status, price_id, calls, input, cache_read, cache_write_5m, cache_write_1h, output,
             reasoning, cost)
         SELECT date_trunc('hour', started_at, 'UTC'), provider, model, service, feature, tenant,
                operation, status, price_id, count(*), sum(input), sum(cache_read),
                sum(cache_write_5m), sum(cache_write_1h), sum(output), sum(reasoning),
                coalesce(sum(cost), 0)
           FROM llm_usage
          WHERE started_at >= $1 AND started_at < $2 AND provider = ANY($3)
          GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
    )
    .bind(from)
    .bind(to)
    .bind(providers)
    .execute(&mut **tx)
    .await?;
    store::rebuild_daily(tx, from, to, Some(providers)).await?;
    let traces: Vec<String> = traces.into_iter().collect();
    store::rebuild_traces(tx, &traces).await?;
    // Their fallback chains are priced again by the next resolution.
    store::requeue_traces(&mut **tx, &traces).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// LiteLLM's model_prices_and_context_window.json.

/// LiteLLM's `litellm_provider` → the OpenTelemetry provider name.
fn provider_from_litellm(p: &str) -> Option<&'static str> {
    Some(match p {
        "openai" | "text-completion-openai" => "openai",
        "anthropic" => "anthropic",
        "gemini" => "gcp.gemini",
        "deepseek" => "deepseek",
        "azure" | "azure_ai" => "azure.ai.openai",
        "bedrock" | "bedrock_converse" => "aws.bedrock",
        "mistral" => "mistral_ai",
        "groq" => "groq",
        "xai" => "x_ai",
        "cohere" | "cohere_chat" => "cohere",
        p if p.starts_with("vertex_ai") => "gcp.vertex_ai",
        _ => return None,
    })
}

fn provider_to_litellm(p: &str) -> &str {
    match p {
        "gcp.gemini" => "gemini",
        "gcp.vertex_ai" => "vertex_ai-language-models",
        "azure.ai.openai" => "azure",
        "aws.bedrock" => "bedrock",
        "mistral_ai" => "mistral",
        "x_ai" => "xai",
        other => other,
    }
}

/// The per-token cost fields Lookout reads, and the bucket each prices.
const LITELLM_COSTS: [&str; 12] = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "output_cost_per_reasoning_token",
    "input_cost_per_token_above_200k_tokens",
    "output_cost_per_token_above_200k_tokens",
    "cache_read_input_token_cost_above_200k_tokens",
    "cache_creation_input_token_cost_above_200k_tokens",
    "input_cost_per_token_batches",
    "output_cost_per_token_batches",
];

fn per_million(v: &serde_json::Value) -> Option<Decimal> {
    let s = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    let d = Decimal::from_scientific(&s)
        .or_else(|_| s.parse::<Decimal>())
        .ok()?;
    Some((d * Decimal::from(1_000_000)).normalize())
}

/// A LiteLLM price file → a change adding its prices from `effective_from` (the date it takes
/// effect), plus the cost fields it ignores. Entries without `litellm_provider`, of an
/// unknown provider, or not chat/completion/embedding/responses models are skipped (and
/// named); a malformed cost is refused with the model and field.
pub fn from_litellm(
    json: &str,
    effective_from: &str,
    source: &str,
) -> DomainResult<(PriceChange, Vec<String>)> {
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| DomainError::invalid(format!("not JSON: {e}")))?;
    let map = doc
        .as_object()
        .ok_or_else(|| DomainError::invalid("a JSON object of models, as LiteLLM's file"))?;
    if map.len() > 20_000 {
        return Err(DomainError::invalid("at most 20000 models"));
    }
    let mut add = Vec::new();
    let mut ignored = Vec::new();
    for (name, entry) in map {
        if name == "sample_spec" {
            continue;
        }
        let Some(e) = entry.as_object() else {
            return Err(DomainError::invalid(format!("{name}: an object of fields")));
        };
        let Some(lp) = e.get("litellm_provider").and_then(|v| v.as_str()) else {
            ignored.push(format!("{name}: no litellm_provider"));
            continue;
        };
        let Some(provider) = provider_from_litellm(lp) else {
            ignored.push(format!("{name}: provider {lp} is not one Lookout maps"));
            continue;
        };
        let mode = e.get("mode").and_then(|v| v.as_str()).unwrap_or("chat");
        if !["chat", "completion", "embedding", "responses"].contains(&mode) {
            ignored.push(format!("{name}: mode {mode}"));
            continue;
        }
        let cost = |field: &str| -> DomainResult<Option<Decimal>> {
            match e.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => per_million(v).map(Some).ok_or_else(|| {
                    DomainError::invalid(format!("{name}: {field}: a number, not {v}"))
                }),
            }
        };
        for k in e.keys() {
            if k.contains("cost") && !LITELLM_COSTS.contains(&k.as_str()) {
                ignored.push(format!("{name}: {k}"));
            }
        }
        let Some(input) = cost("input_cost_per_token")? else {
            ignored.push(format!("{name}: no input_cost_per_token"));
            continue;
        };
        let model = name
            .rsplit_once('/')
            .map(|(_, m)| m)
            .unwrap_or(name)
            .to_string();
        let base = PriceInput {
            provider: provider.into(),
            model: model.clone(),
            service_tier: None,
            min_prompt_tokens: None,
            effective_from: effective_from.into(),
            input,
            cache_read: cost("cache_read_input_token_cost")?,
            cache_write_5m: cost("cache_creation_input_token_cost")?,
            cache_write_1h: cost("cache_creation_input_token_cost_above_1hr")?,
            output: cost("output_cost_per_token")?.unwrap_or_default(),
            reasoning: cost("output_cost_per_reasoning_token")?,
            source: Some(format!("{source} ({name})")),
        };
        if let Some(i200) = cost("input_cost_per_token_above_200k_tokens")? {
            add.push(PriceInput {
                min_prompt_tokens: Some(200_000),
                input: i200,
                output: cost("output_cost_per_token_above_200k_tokens")?.unwrap_or(base.output),
                cache_read: cost("cache_read_input_token_cost_above_200k_tokens")?
                    .or(base.cache_read),
                cache_write_5m: cost("cache_creation_input_token_cost_above_200k_tokens")?
                    .or(base.cache_write_5m),
                ..base.clone()
            });
        }
        if let Some(ib) = cost("input_cost_per_token_batches")? {
            add.push(PriceInput {
                service_tier: Some("batch".into()),
                input: ib,
                output: cost("output_cost_per_token_batches")?.unwrap_or(base.output),
                ..base.clone()
            });
        }
        add.push(base);
    }
    // The same model under two names (openai/gpt-4o and gpt-4o): keep the first.
    let mut seen = BTreeSet::new();
    add.retain(|p| {
        seen.insert((
            p.provider.clone(),
            p.model.clone(),
            p.service_tier.clone(),
            p.min_prompt_tokens,
        ))
    });
    Ok((
        PriceChange {
            add,
            retire: Vec::new(),
        },
        ignored,
    ))
}

/// The live prices in effect now, as LiteLLM's file (per-token costs).
pub async fn to_litellm(pool: &PgPool, who: &Principal) -> DomainResult<serde_json::Value> {
    who.require(Role::Viewer)?;
    let book = store::live_prices(pool).await?;
    let now = OffsetDateTime::now_utc();
    let per_token = |d: Decimal| {
        let v = (d / Decimal::from(1_000_000)).normalize();
        serde_json::Value::Number(
            serde_json::Number::from_f64(v.to_string().parse::<f64>().unwrap_or(0.0))
                .unwrap_or_else(|| serde_json::Number::from(0)),
        )
    };
    // The version in effect now per (provider, model, tier, threshold).
    let mut current: BTreeMap<(String, String, String, i64), &Price> = BTreeMap::new();
    for p in book.iter().filter(|p| p.effective_from <= now) {
        let k = (
            p.provider.clone(),
            p.model.clone(),
            p.service_tier.clone(),
            p.min_prompt_tokens,
        );
        if current
            .get(&k)
            .is_none_or(|q| q.effective_from < p.effective_from)
        {
            current.insert(k, p);
        }
    }
    let mut out = serde_json::Map::new();
    for ((provider, model, tier, min), p) in &current {
        let key = if provider == "openai" || provider == "anthropic" {
            model.clone()
        } else {
            format!("{}/{model}", provider_to_litellm(provider))
        };
        let e = out
            .entry(key)
            .or_insert_with(|| serde_json::json!({ "litellm_provider": provider_to_litellm(provider), "mode": "chat" }));
        let Some(o) = e.as_object_mut() else { continue };
        let r = &p.rates;
        match (tier.as_str(), *min) {
            ("default", 0) => {
                o.insert("input_cost_per_token".into(), per_token(r.input));
                o.insert("output_cost_per_token".into(), per_token(r.output));
                if let Some(x) = r.cache_read {
                    o.insert("cache_read_input_token_cost".into(), per_token(x));
                }
                if let Some(x) = r.cache_write_5m {
                    o.insert("cache_creation_input_token_cost".into(), per_token(x));
                }
                if let Some(x) = r.cache_write_1h {
                    o.insert(
                        "cache_creation_input_token_cost_above_1hr".into(),
                        per_token(x),
                    );
                }
                if let Some(x) = r.reasoning {
                    o.insert("output_cost_per_reasoning_token".into(), per_token(x));
                }
            }
            ("default", 200_000) => {
                o.insert(
                    "input_cost_per_token_above_200k_tokens".into(),
                    per_token(r.input),
                );
                o.insert(
                    "output_cost_per_token_above_200k_tokens".into(),
                    per_token(r.output),
                );
                if let Some(x) = r.cache_read {
                    o.insert(
                        "cache_read_input_token_cost_above_200k_tokens".into(),
                        per_token(x),
                    );
                }
            }
            ("batch", 0) => {
                o.insert("input_cost_per_token_batches".into(), per_token(r.input));
                o.insert("output_cost_per_token_batches".into(), per_token(r.output));
            }
            _ => {}
        }
    }
    Ok(serde_json::Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn the_form_becomes_a_change_or_names_the_bad_field() {
        let form = PriceForm {
            retire: "7".into(),
            provider: "openai".into(),
            model: " gpt-4.1 ".into(),
            min_prompt_tokens: "200_000".into(),
            effective_from: "2026-12-01".into(),
            input: "$2.50".into(),
            output: "10".into(),
            cache_read: "".into(),
            ..Default::default()
        };
        let c = form.change().unwrap();
        assert_eq!(c.retire, vec![7]);
        assert_eq!(c.add.len(), 1);
        let a = &c.add[0];
        assert_eq!(
            (a.model.as_str(), a.input, a.output),
            ("gpt-4.1", dec!(2.50), dec!(10))
        );
        assert_eq!(
            (a.cache_read, a.min_prompt_tokens, a.service_tier.clone()),
            (None, Some(200_000), None)
        );
        // Retire alone.
        let c = PriceForm {
            retire: "3".into(),
            ..Default::default()
        }
        .change()
        .unwrap();
        assert_eq!((c.retire, c.add.len()), (vec![3], 0));
        for (f, field) in [
            (
                PriceForm {
                    input: "cheap".into(),
                    output: "1".into(),
                    model: "m".into(),
                    ..Default::default()
                },
                "input",
            ),
            (
                PriceForm {
                    input: "1".into(),
                    model: "m".into(),
                    ..Default::default()
                },
                "output",
            ),
            (
                PriceForm {
                    input: "1".into(),
                    output: "1".into(),
                    reasoning: "1e".into(),
                    model: "m".into(),
                    ..Default::default()
                },
                "reasoning",
            ),
            (
                PriceForm {
                    retire: "#4".into(),
                    ..Default::default()
                },
                "retire",
            ),
            (
                PriceForm {
                    input: "1".into(),
                    output: "1".into(),
                    min_prompt_tokens: "lots".into(),
                    model: "m".into(),
                    ..Default::default()
                },
                "min_prompt_tokens",
            ),
        ] {
            match f.change() {
                Err(DomainError::Invalid(m)) => assert!(m.starts_with(field), "{m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn litellm_entries_become_prices() {
        let json = r#"{
          "sample_spec": {"input_cost_per_token": 0},
          "gpt-4.1": {"litellm_provider": "openai", "mode": "chat", "max_tokens": 32768,
                      "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
                      "cache_read_input_token_cost": 5e-07, "input_cost_per_token_batches": 1e-06,
                      "output_cost_per_token_batches": 4e-06, "input_cost_per_audio_token": 1e-05},
          "gemini/gemini-2.5-pro": {"litellm_provider": "gemini", "mode": "chat",
                      "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
                      "input_cost_per_token_above_200k_tokens": 2.5e-06,
                      "output_cost_per_token_above_200k_tokens": 1.5e-05},
          "claude-sonnet-4-5": {"litellm_provider": "anthropic", "input_cost_per_token": 3e-06,
                      "output_cost_per_token": 1.5e-05, "cache_creation_input_token_cost": 3.75e-06,
                      "cache_creation_input_token_cost_above_1hr": 6e-06, "cache_read_input_token_cost": 3e-07},
          "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "input_cost_per_pixel": 1e-08},
          "some/thing": {"litellm_provider": "nobody-knows", "input_cost_per_token": 1e-06}
        }"#;
        let (c, ignored) = from_litellm(json, "2026-01-01", "litellm").unwrap();
        let find = |m: &str, tier: &str, min: i64| {
            c.add
                .iter()
                .find(|p| {
                    p.model == m
                        && p.service_tier.as_deref().unwrap_or("default") == tier
                        && p.min_prompt_tokens.unwrap_or(0) == min
                })
                .unwrap_or_else(|| panic!("{m} {tier} {min}: {:?}", c.add))
        };
        let g = find("gpt-4.1", "default", 0);
        assert_eq!(
            (g.input, g.output, g.cache_read),
            (dec!(2), dec!(8), Some(dec!(0.5)))
        );
        assert_eq!(find("gpt-4.1", "batch", 0).input, dec!(1));
        let p = find("gemini-2.5-pro", "default", 200_000);
        assert_eq!(
            (p.provider.as_str(), p.input, p.output),
            ("gcp.gemini", dec!(2.5), dec!(15))
        );
        let a = find("claude-sonnet-4-5", "default", 0);
        assert_eq!(
            (a.cache_write_5m, a.cache_write_1h, a.cache_read),
            (Some(dec!(3.75)), Some(dec!(6)), Some(dec!(0.3)))
        );
        assert_eq!(c.add.len(), 5);
        assert!(
            ignored
                .iter()
                .any(|i| i == "gpt-4.1: input_cost_per_audio_token"),
            "{ignored:?}"
        );
        assert!(
            ignored.iter().any(|i| i.starts_with("dall-e-3: mode")),
            "{ignored:?}"
        );
        assert!(
            ignored
                .iter()
                .any(|i| i.starts_with("some/thing: provider")),
            "{ignored:?}"
        );
        for p in &c.add {
            validate(p).unwrap();
        }
        // A malformed cost names the model and the field.
        let e = from_litellm(
            r#"{"m": {"litellm_provider": "openai", "input_cost_per_token": "lots"}}"#,
            "2026-01-01",
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("m: input_cost_per_token"), "{e}");
        assert!(from_litellm("[1]", "2026-01-01", "x").is_err());
    }

    #[test]
    fn a_price_input_is_checked_field_by_field() {
        let ok = PriceInput {
            provider: "openai".into(),
            model: "gpt-4.1".into(),
            service_tier: None,
            min_prompt_tokens: None,
            effective_from: "2026-01-01".into(),
            input: dec!(2),
            cache_read: None,
            cache_write_5m: None,
            cache_write_1h: None,
            output: dec!(8),
            reasoning: None,
            source: None,
        };
        let (p, _) = validate(&ok).unwrap();
        assert_eq!(
            p.effective_from,
            time::macros::datetime!(2026-01-01 00:00 UTC)
        );
        let cases: Vec<(PriceInput, &str)> = vec![
            (
                PriceInput {
                    input: dec!(-1),
                    ..ok.clone()
                },
                "openai gpt-4.1: input: not negative",
            ),
            (
                PriceInput {
                    output: dec!(20000),
                    ..ok.clone()
                },
                "output: at most",
            ),
            (
                PriceInput {
                    service_tier: Some("cheap".into()),
                    ..ok.clone()
                },
                "service_tier: one of",
            ),
            (
                PriceInput {
                    effective_from: "next week".into(),
                    ..ok.clone()
                },
                "effective_from",
            ),
            (
                PriceInput {
                    model: "".into(),
                    ..ok.clone()
                },
                "model",
            ),
            (
                PriceInput {
                    min_prompt_tokens: Some(-5),
                    ..ok.clone()
                },
                "min_prompt_tokens",
            ),
        ];
        for (p, want) in cases {
            let e = validate(&p).unwrap_err();
            assert!(e.contains(want), "{e} / {want}");
        }
    }
}
