//! Checking automated deployment items (issue 12): the evaluation loop's steps, each safe
//! to run on several replicas at once. [`claim_due`] takes the running items whose next step
//! is due (skipping rows another replica holds) and moves their schedule on; then
//!
//! - a **metric** item: [`measure`] asks the bound Prometheus — read-only, within a time
//!   limit — and records the measurement against the run it was for, setting the item's
//!   state when the run is over (`deployments::metric_outcome`). A target that is down,
//!   slow, refuses the credentials or rejects the query gives an *inconclusive* measurement
//!   carrying the error: never a pass, never a 500.
//! - a **probe** item: [`probe_step`] starts the probe run on the bound target (through the
//!   same path, limits and per-target cap as a person's run) and, on later steps, reads it:
//!   when it has ended, its findings decide (`deployments::probe_outcome`); a run that could
//!   not examine the target is inconclusive. The run is the item's evidence.

use super::resolve;
use crate::deployments::*;
use crate::error::{DomainError, DomainResult};
use crate::reach::Access;
use crate::storage::deployments as store;
use probes::prometheus::condition::{Condition, Phase, judge};
use probes::prometheus::{Client, QueryValue};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// Who sets automated items in the record.
pub const ACTOR: &str = "lookout";

/// What an automated item checks.
#[derive(Debug, Clone)]
pub enum Check {
    Metric(MetricCheck),
    Probe(ProbeCheck),
    KafkaLag(KafkaLagCheck),
}

/// A step to take.
#[derive(Debug, Clone)]
pub struct Due {
    pub deployment_id: i64,
    pub item_id: String,
    pub run: i32,
    pub check: Check,
    pub target_id: Option<i64>,
    /// A probe item's run already started.
    pub probe_run_id: Option<i64>,
    /// How late it is behind its schedule.
    pub lag: Duration,
}

impl Due {
    /// The longest the step may wait on its target: a metric item's interval; a probe
    /// item's step only starts or reads a run.
    pub fn interval(&self) -> Duration {
        match &self.check {
            Check::Metric(m) => Duration::from_secs(m.interval_secs.max(1) as u64),
            Check::Probe(_) => Duration::from_secs(2),
            Check::KafkaLag(k) => Duration::from_secs(k.interval_secs.max(1) as u64),
        }
    }
}

/// The caller Lookout acts as when it starts and reads probe runs for items.
fn system() -> crate::accounts::Principal {
    crate::accounts::Principal {
        user_id: None,
        name: ACTOR.into(),
        role: crate::accounts::Role::Responder,
        method: crate::accounts::AuthMethod::Cli,
        token_id: None,
        deploy_services: None,
        ingest: false,
    }
}

/// Claims up to `limit` due measurements (see the module docs).
pub async fn claim_due(pool: &PgPool, limit: i64) -> DomainResult<Vec<Due>> {
    let rows = store::claim_due(pool, limit).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let spec = r.spec?;
            let check = match r.kind.as_str() {
                "metric" => Check::Metric(serde_json::from_value(spec).ok()?),
                "probe" => Check::Probe(serde_json::from_value(spec).ok()?),
                "kafka_lag" => Check::KafkaLag(serde_json::from_value(spec).ok()?),
                _ => return None,
            };
            Some(Due {
                deployment_id: r.deployment_id,
                item_id: r.item_id,
                run: r.run,
                check,
                target_id: r.target_id,
                probe_run_id: r.probe_run_id,
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
    let Check::Metric(c) = &due.check else {
        return Err("not a metric item".into());
    };
    client
        .query(&c.query, limit)
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
    let Check::Metric(c) = &due.check else {
        return Err(DomainError::internal("measure() is for metric items"));
    };
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
    let Some((run, status, section)) = still_running(&mut tx, due).await? else {
        return Ok(None);
    };
    let value_text = values
        .iter()
        .take(3)
        .map(|s| s.value.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let (ok, failed, inconclusive) =
        append_measurement(&mut tx, due, run, phase, &values, series, message).await?;
    let Check::Metric(c) = &due.check else {
        return Err(DomainError::internal("record() is for metric items"));
    };
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
        end_run(&mut tx, due, (run, status, &section), to, &note).await?;
    }
    tx.commit().await?;
    Ok(new_state)
}

/// One step of a probe item: start its run, or read the run and, once it has ended, decide.
/// Returns the item's new state when the run ended it.
pub async fn probe_step(
    pool: &PgPool,
    access: &Access,
    runner: &super::probe_runs::Runner,
    due: &Due,
) -> DomainResult<Option<ItemState>> {
    let Check::Probe(c) = &due.check else {
        return Err(DomainError::internal("probe_step() is for probe items"));
    };
    let who = system();
    let Some(run_id) = due.probe_run_id else {
        let Some(target_id) = due.target_id else {
            return finish(
                pool,
                due,
                ItemState::Inconclusive,
                "the target this item was bound to has been deleted",
                vec![],
            )
            .await;
        };
        let req = super::probe_runs::StartRun {
            probe: c.probe.clone(),
            params: c
                .params
                .iter()
                .map(|(k, v)| (k.clone(), super::probe_runs::ParamValue::Text(v.clone())))
                .collect(),
            incident_key: None,
        };
        return match super::probe_runs::start(pool, runner, access, &who, target_id, req).await {
            Ok(run) => {
                let mut tx = pool.begin().await?;
                if let Some((state, r, _)) =
                    store::lock_item(&mut *tx, due.deployment_id, &due.item_id).await?
                    && state == "running"
                    && r == due.run
                {
                    store::set_probe_run(&mut *tx, due.deployment_id, &due.item_id, run.id).await?;
                    store::insert_event(
                        &mut *tx,
                        due.deployment_id,
                        ACTOR,
                        "run",
                        &format!(
                            "{} probe run #{} started on {} (run {})",
                            due.item_id, run.id, run.target_name, due.run
                        ),
                        serde_json::json!({ "item": due.item_id, "probe_run": run.id, "run": due.run }),
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(None)
            }
            // The target's run limit is reached: the next step tries again.
            Err(DomainError::RateLimited { .. }) => Ok(None),
            Err(e) => {
                finish(
                    pool,
                    due,
                    ItemState::Inconclusive,
                    &format!("the probe could not start: {e}"),
                    vec![],
                )
                .await
            }
        };
    };
    let detail = match super::probe_runs::get_run(pool, &who, run_id).await {
        Ok(d) => d,
        Err(DomainError::NotFound(_)) => {
            return finish(
                pool,
                due,
                ItemState::Inconclusive,
                &format!("probe run #{run_id} is gone"),
                vec![],
            )
            .await;
        }
        Err(e) => return Err(e),
    };
    if detail.run.status == crate::probe_runs::RunStatus::Running {
        return Ok(None);
    }
    let findings: Vec<(String, String, String)> = detail
        .findings
        .iter()
        .map(|f| {
            (
                f.code.clone(),
                f.severity.as_str().to_string(),
                f.title.clone(),
            )
        })
        .collect();
    let (state, message) = probe_outcome(
        c,
        detail.run.status.as_str(),
        detail.run.error.as_deref(),
        &findings,
    );
    let values = findings
        .iter()
        .take(MEASURED_SERIES_MAX)
        .map(|(code, sev, title)| MeasuredSeries {
            labels: [
                ("code".to_string(), code.clone()),
                ("severity".to_string(), sev.clone()),
                ("probe_run".to_string(), run_id.to_string()),
            ]
            .into(),
            value: title.clone(),
        })
        .collect();
    finish(
        pool,
        due,
        state,
        &format!("probe run #{run_id}: {message}"),
        values,
    )
    .await
}

/// Ends a probe item's run: the outcome kept (as a measurement, and in the record) and the
/// item's state set — unless the item moved on meanwhile.
async fn finish(
    pool: &PgPool,
    due: &Due,
    to: ItemState,
    message: &str,
    values: Vec<MeasuredSeries>,
) -> DomainResult<Option<ItemState>> {
    let mut tx = pool.begin().await?;
    let Some((run, status, section)) = still_running(&mut tx, due).await? else {
        return Ok(None);
    };
    let phase = match to {
        ItemState::Passed => Phase::Successful,
        ItemState::Failed => Phase::Failed,
        _ => Phase::Inconclusive,
    };
    let series = values.len() as i32;
    append_measurement(&mut tx, due, run, phase, &values, series, message).await?;
    end_run(&mut tx, due, (run, status, &section), to, message).await?;
    tx.commit().await?;
    Ok(Some(to))
}

/// The verdict ranks of the Kafka sampler (`kafka_groups.status`).
fn lag_rank(status: &str) -> Option<u8> {
    match status {
        "OK" => Some(0),
        "WARN" => Some(2),
        "ERR" => Some(3),
        _ => None,
    }
}

/// One reading of a `kafka_lag` item: the sampler's latest verdict on its group, judged,
/// kept (as a measurement, and in the record), and the item's state set when the run ends.
pub async fn lag_step(pool: &PgPool, due: &Due) -> DomainResult<Option<ItemState>> {
    let Check::KafkaLag(c) = &due.check else {
        return Err(DomainError::internal("lag_step() is for kafka_lag items"));
    };
    let row: Option<(String, String, i64, f64)> = match due.target_id {
        Some(t) => {
            sqlx::query_as(
                "SELECT status, reason, total_lag, EXTRACT(EPOCH FROM (now() - at))::float8
                 FROM kafka_groups WHERE target_id = $1 AND group_name = $2",
            )
            .bind(t)
            .bind(&c.group)
            .fetch_optional(pool)
            .await?
        }
        None => None,
    };
    let worst = if c.max_state == "warn" { 2 } else { 0 };
    let (phase, message, values) = match row {
        None => (
            Phase::Inconclusive,
            format!(
                "the Kafka sampler has no verdict on group {:?} of this target (is the sampler on, and does the group exist?)",
                c.group
            ),
            vec![],
        ),
        Some((_, _, _, age)) if age > 300.0 => (
            Phase::Inconclusive,
            format!(
                "the sampler's last verdict on {:?} is {age:.0} s old",
                c.group
            ),
            vec![],
        ),
        Some((status, reason, lag, age)) => {
            let v = vec![MeasuredSeries {
                labels: [
                    ("group".to_string(), c.group.clone()),
                    ("total_lag".to_string(), lag.to_string()),
                    ("age_s".to_string(), format!("{age:.0}")),
                ]
                .into(),
                value: status.clone(),
            }];
            match lag_rank(&status) {
                None => (Phase::Inconclusive, format!("{status}: {reason}"), v),
                Some(r) if r <= worst => (
                    Phase::Successful,
                    format!("{status} (lag {lag}): {reason}"),
                    v,
                ),
                Some(_) => (
                    Phase::Failed,
                    format!(
                        "{status} (lag {lag}), worse than {}: {reason}",
                        c.max_state.to_ascii_uppercase()
                    ),
                    v,
                ),
            }
        }
    };
    let mut tx = pool.begin().await?;
    let Some((run, status, section)) = still_running(&mut tx, due).await? else {
        return Ok(None);
    };
    let series = values.len() as i32;
    let (_, failed, inconclusive) =
        append_measurement(&mut tx, due, run, phase, &values, series, &message).await?;
    let span: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (max(at) - min(at)))::float8 FROM deployment_measurements
         WHERE deployment_id = $1 AND item_id = $2 AND run = $3",
    )
    .bind(due.deployment_id)
    .bind(&due.item_id)
    .bind(run)
    .fetch_one(&mut *tx)
    .await?;
    store::insert_event(
        &mut *tx,
        due.deployment_id,
        ACTOR,
        "measurement",
        &format!(
            "{} reading (run {run}): {} — {message}",
            due.item_id,
            phase.as_str()
        ),
        serde_json::json!({ "item": due.item_id, "run": run, "phase": phase.as_str() }),
    )
    .await?;
    let to = match lag_outcome(c, failed as u32, inconclusive as u32, span) {
        MetricOutcome::Running => None,
        MetricOutcome::Passed => Some(ItemState::Passed),
        MetricOutcome::Failed => Some(ItemState::Failed),
        MetricOutcome::Inconclusive => Some(ItemState::Inconclusive),
    };
    if let Some(to) = to {
        let note = match to {
            ItemState::Passed => format!(
                "group {} no worse than {} for {:.0} s (asked: {} s); last: {message}",
                c.group,
                c.max_state.to_ascii_uppercase(),
                span,
                c.duration_secs
            ),
            _ => format!("{}: {message}", to.as_str()),
        };
        end_run(&mut tx, due, (run, status, &section), to, &note).await?;
    }
    tx.commit().await?;
    Ok(to)
}

/// The item a step was for, locked, if it is still running that run in its open section:
/// `(run, the deployment's status, the item's section)`. `None`: it moved on meanwhile
/// (re-run, waived, its section closed) and the step is dropped.
/// Appends one measurement to the due item's run (its evidence, and the counts so far:
/// successful, failed, inconclusive).
async fn append_measurement(
    tx: &mut PgConnection,
    due: &Due,
    run: i32,
    phase: Phase,
    values: &[MeasuredSeries],
    series: i32,
    message: &str,
) -> DomainResult<(i64, i64, i64)> {
    Ok(store::insert_measurement(
        tx,
        store::NewMeasurement {
            deployment_id: due.deployment_id,
            item_id: &due.item_id,
            run,
            phase: phase.as_str(),
            value: serde_json::to_value(values).map_err(DomainError::internal)?,
            series,
            message,
            lag_ms: due.lag.as_millis().min(i32::MAX as u128) as i32,
        },
    )
    .await?)
}

async fn still_running(
    tx: &mut PgConnection,
    due: &Due,
) -> DomainResult<Option<(i32, DeploymentStatus, String)>> {
    let Some((state, run, status)) =
        store::lock_item(&mut *tx, due.deployment_id, &due.item_id).await?
    else {
        return Ok(None);
    };
    let status = DeploymentStatus::parse(&status)
        .ok_or_else(|| DomainError::internal(format!("unknown deployment status {status:?}")))?;
    let section = store::items(&mut *tx, due.deployment_id)
        .await?
        .into_iter()
        .find(|i| i.item_id == due.item_id)
        .map(|i| i.section)
        .unwrap_or_default();
    let open = status.open_section().map(|s| s.as_str());
    if state != "running" || run != due.run || open != Some(section.as_str()) {
        return Ok(None);
    }
    Ok(Some((run, status, section)))
}

/// Ends an automated item's run: its state and note, the record's event, and — for a
/// pre-deploy item — the approvals it voids.
async fn end_run(
    tx: &mut PgConnection,
    due: &Due,
    (run, status, section): (i32, DeploymentStatus, &str),
    to: ItemState,
    note: &str,
) -> DomainResult<()> {
    store::set_item_state(
        &mut *tx,
        due.deployment_id,
        &due.item_id,
        to.as_str(),
        Some(ACTOR),
        Some(note),
    )
    .await?;
    store::insert_event(
        &mut *tx,
        due.deployment_id,
        ACTOR,
        "item",
        &format!("{ACTOR} {} item {} — {note}", to.as_str(), due.item_id),
        serde_json::json!({ "item": due.item_id, "state": to.as_str(), "from": "running", "run": run, "probe_run": due.probe_run_id }),
    )
    .await?;
    if section == "pre" {
        super::deployments::pre_item_changed(
            tx,
            due.deployment_id,
            status,
            ACTOR,
            &due.item_id,
            ItemState::Running,
            to,
        )
        .await?;
    }
    Ok(())
}
