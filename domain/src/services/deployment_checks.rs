//! Measuring automated deployment items (issue 12): the evaluation loop's two steps, each
//! safe to run on several replicas at once. [`claim_due`] takes the running items whose next
//! measurement is due (skipping rows another replica holds) and moves their schedule one
//! interval on; [`measure`] asks the bound Prometheus — read-only, within a time limit — and
//! records the measurement against the run it was for, setting the item's state when the
//! run is over (`deployments::metric_outcome`). A target that is down, slow, refuses the
//! credentials or rejects the query gives an *inconclusive* measurement carrying the error:
//! never a pass, never a 500.

use super::resolve;
use crate::deployments::*;
use crate::error::{DomainError, DomainResult};
use crate::reach::Access;
use crate::storage::deployments as store;
use probes::prometheus::condition::{Condition, Phase, judge};
use probes::prometheus::{Client, QueryValue};
use sqlx::PgPool;
use std::time::Duration;

/// Who sets automated items in the record.
pub const ACTOR: &str = "lookout";

/// A measurement to take.
#[derive(Debug, Clone)]
pub struct Due {
    pub deployment_id: i64,
    pub item_id: String,
    pub run: i32,
    pub check: MetricCheck,
    pub target_id: Option<i64>,
    /// How late it is behind its schedule.
    pub lag: Duration,
}

/// Claims up to `limit` due measurements (see the module docs).
pub async fn claim_due(pool: &PgPool, limit: i64) -> DomainResult<Vec<Due>> {
    let rows = store::claim_due(pool, limit).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let check = serde_json::from_value::<MetricCheck>(r.spec?).ok()?;
            Some(Due {
                deployment_id: r.deployment_id,
                item_id: r.item_id,
                run: r.run,
                check,
                target_id: r.target_id,
                lag: Duration::from_secs_f64((r.lag_ms / 1000.0).max(0.0)),
            })
        })
        .collect())
}

fn prom_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn series_of(v: &QueryValue) -> (Vec<MeasuredSeries>, i32) {
    match v {
        QueryValue::Scalar(x) => (
            vec![MeasuredSeries {
                labels: Default::default(),
                value: prom_number(*x),
            }],
            1,
        ),
        QueryValue::Vector(s) => (
            s.iter()
                .take(MEASURED_SERIES_MAX)
                .map(|s| MeasuredSeries {
                    labels: s.labels.clone(),
                    value: prom_number(s.value),
                })
                .collect(),
            s.len() as i32,
        ),
    }
}

/// Asks the item's Prometheus: the value, or why there is none (secrets scrubbed).
async fn ask(
    pool: &PgPool,
    access: &Access,
    due: &Due,
    limit: Duration,
) -> Result<QueryValue, String> {
    let id = due
        .target_id
        .ok_or("the Prometheus target this item was bound to has been deleted")?;
    let row = resolve::row(pool, id).await.map_err(|e| e.to_string())?;
    let secret = resolve::open_secret(access.key.as_ref(), &row).map_err(|e| e.to_string())?;
    let address = resolve::connect_address(access, &row, secret.as_deref()).await?;
    let client =
        Client::new(&address).map_err(|e| resolve::scrub(&e.to_string(), secret.as_deref()))?;
    client
        .query(&due.check.query, limit)
        .await
        .map_err(|e| resolve::scrub(&e.to_string(), secret.as_deref()))
}

/// Takes one measurement (asking within `limit`) and records it. Returns the item's new
/// state when this measurement ended its run; `None` while it goes on, or when the item
/// moved on meanwhile (re-run, waived, its section closed) and the measurement was dropped.
pub async fn measure(
    pool: &PgPool,
    access: &Access,
    due: &Due,
    limit: Duration,
) -> DomainResult<Option<ItemState>> {
    let c = &due.check;
    let (phase, message, values, series) = match ask(pool, access, due, limit).await {
        Err(e) => (Phase::Inconclusive, e, vec![], 0),
        Ok(v) => {
            let (values, series) = series_of(&v);
            let conditions = Condition::parse(&c.success).and_then(|s| {
                c.failure
                    .as_deref()
                    .map(Condition::parse)
                    .transpose()
                    .map(|f| (s, f))
            });
            match conditions {
                Ok((s, f)) => {
                    let (phase, why) = judge(&s, f.as_ref(), &v);
                    (phase, why, values, series)
                }
                Err(e) => (Phase::Inconclusive, e, values, series),
            }
        }
    };
    record(pool, due, phase, &message, values, series).await
}

async fn record(
    pool: &PgPool,
    due: &Due,
    phase: Phase,
    message: &str,
    values: Vec<MeasuredSeries>,
    series: i32,
) -> DomainResult<Option<ItemState>> {
    let mut tx = pool.begin().await?;
    let Some((state, run, status)) =
        store::lock_item(&mut *tx, due.deployment_id, &due.item_id).await?
    else {
        return Ok(None);
    };
    let status = DeploymentStatus::parse(&status)
        .ok_or_else(|| DomainError::internal(format!("unknown deployment status {status:?}")))?;
    let item = store::items(&mut *tx, due.deployment_id)
        .await?
        .into_iter()
        .find(|i| i.item_id == due.item_id)
        .ok_or_else(|| DomainError::internal("the item locked is gone"))?;
    let open = status.open_section().map(|s| s.as_str());
    if state != "running" || run != due.run || open != Some(item.section.as_str()) {
        return Ok(None);
    }
    let value_text = values
        .iter()
        .take(3)
        .map(|s| s.value.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let (ok, failed, inconclusive) = store::insert_measurement(
        &mut tx,
        store::NewMeasurement {
            deployment_id: due.deployment_id,
            item_id: &due.item_id,
            run,
            phase: phase.as_str(),
            value: serde_json::to_value(&values).map_err(DomainError::internal)?,
            series,
            message,
            lag_ms: due.lag.as_millis().min(i32::MAX as u128) as i32,
        },
    )
    .await?;
    let c = &due.check;
    let taken = (ok + failed + inconclusive) as u32;
    store::insert_event(
        &mut *tx,
        due.deployment_id,
        ACTOR,
        "measurement",
        &format!(
            "{} measurement {taken} of {} (run {run}): {}{} — {message}",
            due.item_id,
            c.count,
            phase.as_str(),
            if value_text.is_empty() { String::new() } else { format!(", value {value_text}") },
        ),
        serde_json::json!({ "item": due.item_id, "run": run, "phase": phase.as_str(), "values": values }),
    )
    .await?;
    let outcome = metric_outcome(c, ok as u32, failed as u32, inconclusive as u32);
    let new_state = match outcome {
        MetricOutcome::Running => None,
        MetricOutcome::Passed => Some(ItemState::Passed),
        MetricOutcome::Failed => Some(ItemState::Failed),
        MetricOutcome::Inconclusive => Some(ItemState::Inconclusive),
    };
    if let Some(to) = new_state {
        let note = format!(
            "{}: {ok} successful, {failed} failed, {inconclusive} inconclusive of {} measurement(s) (limits: {} failed, {} inconclusive); last: {message}",
            to.as_str(),
            c.count,
            c.failure_limit,
            c.inconclusive_limit
        );
        store::set_item_state(
            &mut *tx,
            due.deployment_id,
            &due.item_id,
            to.as_str(),
            Some(ACTOR),
            Some(&note),
        )
        .await?;
        store::insert_event(
            &mut *tx,
            due.deployment_id,
            ACTOR,
            "item",
            &format!("{} {} item {} — {note}", ACTOR, to.as_str(), due.item_id),
            serde_json::json!({ "item": due.item_id, "state": to.as_str(), "from": "running", "run": run }),
        )
        .await?;
        if item.section == "pre" {
            super::deployments::pre_item_changed(
                &mut tx,
                due.deployment_id,
                status,
                ACTOR,
                &due.item_id,
                ItemState::Running,
                to,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(new_state)
}
