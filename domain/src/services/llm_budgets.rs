//! LLM budgets: a weekly or monthly amount per service, feature or tenant. The evaluation
//! (a background job, [`evaluate`]) compares the period's spend so far — and a linear
//! forecast of the whole period — with 80% and 100% of the budget; the first crossing of each
//! threshold in a period opens an incident for the scope (or adds a finding to its open one),
//! once ([`crossings`] is the pure rule, table-tested).

use crate::accounts::{AuthMethod, Principal, RequestMeta, Role};
use crate::costs::BudgetStatus;
use crate::error::{DomainError, DomainResult};
use crate::incidents::{FindingSeverity, Severity, TimelineKind, incident_key};
use crate::services::llm::money;
use crate::storage::{audit, incidents as istore};
use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::{PgPool, Row};
use time::{Date, Duration, Month, OffsetDateTime};

/// The share of a period that must have passed before its forecast counts (earlier, one busy
/// hour would forecast a month of it).
pub const FORECAST_AFTER: f64 = 0.2;

pub const SCOPES: [&str; 3] = ["service", "feature", "tenant"];
pub const PERIODS: [&str; 2] = ["week", "month"];

/// Which thresholds a period's spend crosses, and on what basis: `actual` when spent, else
/// `forecast` when the period's forecast (spent ÷ elapsed share) reaches it — counted only once
/// [`FORECAST_AFTER`] of the period has passed.
pub fn crossings(amount: Decimal, spent: Decimal, elapsed: f64) -> Vec<(i32, &'static str)> {
    let mut out = Vec::new();
    if amount <= Decimal::ZERO {
        return out;
    }
    let forecast = forecast(spent, elapsed);
    for t in [80, 100] {
        let line = amount * Decimal::from(t) / Decimal::from(100);
        if spent >= line {
            out.push((t, "actual"));
        } else if forecast.is_some_and(|f| f >= line) {
            out.push((t, "forecast"));
        }
    }
    out
}

/// The whole period's spend at the rate so far; `None` before [`FORECAST_AFTER`].
pub fn forecast(spent: Decimal, elapsed: f64) -> Option<Decimal> {
    if !(FORECAST_AFTER..=1.0).contains(&elapsed) {
        return if elapsed > 1.0 { Some(spent) } else { None };
    }
    let e = Decimal::from_f64_retain(elapsed)?;
    Some((spent / e).round_dp(6))
}

/// The period containing `now`: its start and end (UTC).
pub fn period_bounds(period: &str, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let today = now.date();
    match period {
        "month" => {
            let start = Date::from_calendar_date(today.year(), today.month(), 1).unwrap_or(today);
            let (y, m) = if today.month() == Month::December {
                (today.year() + 1, Month::January)
            } else {
                (today.year(), today.month().next())
            };
            let end = Date::from_calendar_date(y, m, 1).unwrap_or(start + Duration::days(31));
            (start.midnight().assume_utc(), end.midnight().assume_utc())
        }
        _ => {
            let start =
                today - Duration::days(i64::from(today.weekday().number_days_from_monday()));
            (
                start.midnight().assume_utc(),
                (start + Duration::days(7)).midnight().assume_utc(),
            )
        }
    }
}

/// An amount typed in a form (`250`, `99.50`, `$1,200`).
pub fn parse_amount(s: &str) -> DomainResult<Decimal> {
    s.trim()
        .trim_start_matches('$')
        .replace(',', "")
        .parse::<Decimal>()
        .map_err(|_| DomainError::invalid("amount: dollars, e.g. 250 or 99.50"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    pub scope: String,
    pub name: String,
    pub period: String,
    pub amount: Decimal,
}

/// Creates a budget (approvers and admins).
pub async fn create_budget(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    b: &NewBudget,
) -> DomainResult<i64> {
    who.require(Role::Approver)?;
    if !SCOPES.contains(&b.scope.as_str()) {
        return Err(DomainError::invalid(format!(
            "scope: one of {}",
            SCOPES.join(", ")
        )));
    }
    if !PERIODS.contains(&b.period.as_str()) {
        return Err(DomainError::invalid("period: week or month"));
    }
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name: 1 to 200 characters, no control characters",
        ));
    }
    if b.amount <= Decimal::ZERO || b.amount > Decimal::from(1_000_000_000) {
        return Err(DomainError::invalid(
            "amount: dollars, above 0 and at most 1000000000",
        ));
    }
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO llm_budgets (scope, name, period, amount, created_by) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(&b.scope)
    .bind(name)
    .bind(&b.period)
    .bind(b.amount)
    .bind(&who.name)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if crate::storage::is_unique_violation(&e) {
            DomainError::conflict(format!(
                "{} {name} already has a {} budget: delete it first",
                b.scope, b.period
            ))
        } else {
            e.into()
        }
    })?;
    audit::append(
        &mut *tx,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "llm.budget.create",
            target: &format!("{} {name}", b.scope),
            details: serde_json::json!({ "id": id, "period": b.period, "amount": b.amount.to_string() }),
            meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn delete_budget(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    id: i64,
) -> DomainResult<()> {
    who.require(Role::Approver)?;
    let mut tx = pool.begin().await?;
    let gone: Option<(String, String)> =
        sqlx::query_as("DELETE FROM llm_budgets WHERE id = $1 RETURNING scope, name")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((scope, name)) = gone else {
        return Err(DomainError::not_found(format!("no budget #{id}")));
    };
    audit::append(
        &mut *tx,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "llm.budget.delete",
            target: &format!("{scope} {name}"),
            details: serde_json::json!({ "id": id }),
            meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

struct Budget {
    id: i64,
    scope: String,
    name: String,
    period: String,
    amount: Decimal,
    created_by: String,
}

async fn budgets(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<Vec<Budget>> {
    let rows = sqlx::query(
        "SELECT id, scope, name, period, amount, created_by FROM llm_budgets ORDER BY scope, name, period",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Budget {
                id: r.try_get("id")?,
                scope: r.try_get("scope")?,
                name: r.try_get("name")?,
                period: r.try_get("period")?,
                amount: r.try_get("amount")?,
                created_by: r.try_get("created_by")?,
            })
        })
        .collect()
}

/// What a budget's scope spent in `[from, to)` (priced calls, from the rollups).
async fn spent(
    db: impl sqlx::PgExecutor<'_>,
    b: &Budget,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<Decimal> {
    // The scope names one of three known columns (checked when the budget was created, and
    // by the table's CHECK), so it can be put in the SQL.
    let col = match b.scope.as_str() {
        "feature" => "feature",
        "tenant" => "tenant",
        _ => "service",
    };
    let d: Option<Decimal> = sqlx::query_scalar(&format!(
        "SELECT sum(cost) FROM llm_usage_hourly WHERE hour >= $1 AND hour < $2 AND {col} = $3"
    ))
    .bind(from)
    .bind(to)
    .bind(&b.name)
    .fetch_one(db)
    .await?;
    Ok(d.unwrap_or_default())
}

fn elapsed_share(from: OffsetDateTime, to: OffsetDateTime, now: OffsetDateTime) -> f64 {
    let total = (to - from).as_seconds_f64();
    if total <= 0.0 {
        return 1.0;
    }
    ((now - from).as_seconds_f64() / total).clamp(0.0, 1.0)
}

fn pct(a: Decimal, b: Decimal) -> f64 {
    if b.is_zero() {
        return 0.0;
    }
    (a * Decimal::from(100) / b)
        .round_dp(1)
        .to_string()
        .parse()
        .unwrap_or(0.0)
}

/// Every budget with its current period's spend and forecast.
pub async fn list_budgets(pool: &PgPool, who: &Principal) -> DomainResult<Vec<BudgetStatus>> {
    who.require(Role::Viewer)?;
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for b in budgets(pool).await? {
        let (from, to) = period_bounds(&b.period, now);
        let s = spent(pool, &b, from, now + Duration::hours(1)).await?;
        let f = forecast(s, elapsed_share(from, to, now));
        let raised: Vec<i32> = sqlx::query_scalar(
            "SELECT threshold FROM llm_budget_alerts WHERE budget_id = $1 AND period_start = $2 ORDER BY 1",
        )
        .bind(b.id)
        .bind(from.date())
        .fetch_all(pool)
        .await?;
        out.push(BudgetStatus {
            id: b.id,
            scope: b.scope.clone(),
            name: b.name.clone(),
            period: b.period.clone(),
            amount: money(b.amount),
            period_start: from.date().to_string(),
            spent: money(s),
            forecast: f.map(money),
            spent_percent: pct(s, b.amount),
            forecast_percent: f.map(|f| pct(f, b.amount)),
            raised,
            created_by: b.created_by.clone(),
        });
    }
    Ok(out)
}

fn system() -> Principal {
    Principal {
        user_id: None,
        name: "lookout:llm-budgets".into(),
        role: Role::Admin,
        method: AuthMethod::Cli,
        token_id: None,
        deploy_services: None,
        ingest: false,
    }
}

/// One evaluation of every budget at `now`: each threshold crossed for the first time in its
/// period raises (an incident for the scope, or a finding on its open one). Returns how many
/// were raised.
pub async fn evaluate(pool: &PgPool, now: OffsetDateTime) -> DomainResult<usize> {
    let mut raised = 0;
    for b in budgets(pool).await? {
        let (from, to) = period_bounds(&b.period, now);
        let s = spent(pool, &b, from, now + Duration::hours(1)).await?;
        let elapsed = elapsed_share(from, to, now);
        let f = forecast(s, elapsed).unwrap_or(s);
        for (threshold, basis) in crossings(b.amount, s, elapsed) {
            let mut tx = pool.begin().await?;
            let fresh: Option<i32> = sqlx::query_scalar(
                "INSERT INTO llm_budget_alerts (budget_id, period_start, threshold, basis, spent, forecast)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING threshold",
            )
            .bind(b.id)
            .bind(from.date())
            .bind(threshold)
            .bind(basis)
            .bind(s)
            .bind(f)
            .fetch_optional(&mut *tx)
            .await?;
            if fresh.is_none() {
                continue;
            }
            let incident = raise(&mut tx, &b, threshold, basis, s, f, from).await?;
            sqlx::query(
                "UPDATE llm_budget_alerts SET incident_id = $4
                  WHERE budget_id = $1 AND period_start = $2 AND threshold = $3",
            )
            .bind(b.id)
            .bind(from.date())
            .bind(threshold)
            .bind(incident)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            raised += 1;
        }
    }
    Ok(raised)
}

async fn raise(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    b: &Budget,
    threshold: i32,
    basis: &str,
    spent: Decimal,
    forecast: Decimal,
    from: OffsetDateTime,
) -> DomainResult<i64> {
    let who = system();
    let key = format!("llm-budget:{}:{}", b.scope, b.name);
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(&key)
        .execute(&mut **tx)
        .await?;
    let code = if threshold >= 100 {
        probes::llm::BUDGET_100
    } else {
        probes::llm::BUDGET_80
    };
    let what = if basis == "actual" {
        format!(
            "spent {} of its {} {} budget",
            money(spent),
            money(b.amount),
            b.period
        )
    } else {
        format!(
            "is forecast to spend {} of its {} {} budget ({} so far)",
            money(forecast),
            money(b.amount),
            b.period,
            money(spent)
        )
    };
    let title: String = format!("LLM {} {} {what} ({threshold}%)", b.scope, b.name)
        .chars()
        .take(200)
        .collect();
    let incident = match istore::open_by_group_key(&mut **tx, &key).await? {
        Some(i) => i.id,
        None => {
            let severity = if threshold >= 100 {
                Severity::Sev3
            } else {
                Severity::Sev4
            };
            let service = if b.scope == "service" {
                crate::alertmanager::sanitize_name(&b.name).unwrap_or_else(|| "llm".into())
            } else {
                "llm".into()
            };
            let (id, number) = istore::insert(
                &mut **tx,
                istore::NewIncidentRow {
                    title: &title,
                    summary: &format!("The {} budget of {} {} crossed {threshold}%.", b.period, b.scope, b.name),
                    severity,
                    services: &[service],
                    environment: "production",
                    labels: serde_json::json!({ "llm-budget": b.id, "llm-scope": b.scope, "llm-name": b.name }),
                    commander_id: None,
                    created_by: &who.name,
                    created_by_id: None,
                    alert_group_key: Some(&key),
                    detected_at: None,
                },
            )
            .await?;
            istore::insert_event(
                &mut **tx,
                istore::NewEvent {
                    incident_id: id,
                    actor: &who.name,
                    actor_id: None,
                    kind: TimelineKind::Created,
                    body: &format!("Opened {} as {severity}: {title}", incident_key(number)),
                    details: serde_json::json!({ "group_key": key }),
                },
            )
            .await?;
            id
        }
    };
    let fact = |n: &str, v: String| crate::incidents::EvidenceFact {
        name: n.into(),
        value: v,
    };
    let evidence = crate::incidents::Evidence {
        facts: vec![
            fact(
                "budget",
                format!("{} {} per {}", money(b.amount), b.scope, b.period),
            ),
            fact("scope", format!("{} = {}", b.scope, b.name)),
            fact("period from", from.date().to_string()),
            fact("spent so far", money(spent)),
            fact("forecast for the period", money(forecast)),
            fact("crossed on", basis.to_string()),
        ],
        command: Some(format!(
            "GET /api/v1/llm/review?{}={}&by=model",
            b.scope,
            crate::services::llm::query_escape(&b.name)
        )),
        excerpt: None,
        tables: vec![],
        charts: vec![],
    };
    let fid = istore::insert_finding(
        &mut **tx,
        istore::NewFindingRow {
            incident_id: Some(incident),
            code: code.code,
            source_kind: "probe",
            source_probe: Some("llm-budgets"),
            source_target: None,
            severity: if threshold >= 100 {
                FindingSeverity::Critical
            } else {
                FindingSeverity::Warning
            },
            title: &title,
            evidence: serde_json::to_value(&evidence).map_err(DomainError::internal)?,
            remediation: code.remediation,
            doc_link: None,
            created_by: &who.name,
            probe_run_id: None,
        },
    )
    .await?;
    istore::insert_event(
        &mut **tx,
        istore::NewEvent {
            incident_id: incident,
            actor: &who.name,
            actor_id: None,
            kind: TimelineKind::FindingAdded,
            body: &format!("{} {title}", code.code),
            details: serde_json::json!({ "finding_id": fid, "budget": b.id }),
        },
    )
    .await?;
    Ok(incident)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use time::macros::datetime;

    #[test]
    fn thresholds_crossed_on_spend_or_forecast() {
        type Case<'a> = (&'a str, Decimal, Decimal, f64, Vec<(i32, &'a str)>);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("nothing yet", dec!(100), dec!(0), 0.5, vec![]),
            ("79% spent at the end", dec!(100), dec!(79), 1.0, vec![]),
            ("80% spent", dec!(100), dec!(80), 0.9, vec![(80, "actual")]),
            ("100% spent", dec!(100), dec!(100), 0.9, vec![(80, "actual"), (100, "actual")]),
            ("on course for 120%: both forecast", dec!(100), dec!(60), 0.5, vec![(80, "forecast"), (100, "forecast")]),
            ("spent 85, on course for 170", dec!(100), dec!(85), 0.5, vec![(80, "actual"), (100, "forecast")]),
            ("early: no forecast yet", dec!(100), dec!(10), 0.05, vec![]),
            ("early but already spent", dec!(100), dec!(90), 0.05, vec![(80, "actual")]),
            ("on course for 90%", dec!(100), dec!(45), 0.5, vec![(80, "forecast")]),
        ];
        for (name, amount, spent, elapsed, want) in cases {
            assert_eq!(crossings(amount, spent, elapsed), want, "{name}");
        }
    }

    #[test]
    fn periods() {
        let now = datetime!(2026-11-30 10:00 UTC); // a Monday
        assert_eq!(
            period_bounds("week", now),
            (
                datetime!(2026-11-30 00:00 UTC),
                datetime!(2026-12-07 00:00 UTC)
            )
        );
        assert_eq!(
            period_bounds("month", now),
            (
                datetime!(2026-11-01 00:00 UTC),
                datetime!(2026-12-01 00:00 UTC)
            )
        );
        assert_eq!(
            period_bounds("month", datetime!(2026-12-31 23:59 UTC)).1,
            datetime!(2027-01-01 00:00 UTC)
        );
        assert_eq!(
            period_bounds("week", datetime!(2026-12-06 23:59 UTC)).0,
            datetime!(2026-11-30 00:00 UTC)
        );
    }
}
