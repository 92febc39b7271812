//! Probe runs: start (validated, limited per target), run in the background with progress
//! written to PostgreSQL, cancel, read, attach to an incident.
//!
//! Why progress goes through PostgreSQL rather than an in-memory channel: any replica can
//! serve the page watching a run, so the run's row is the one place its progress lives. The
//! runner writes it at most every 250 ms; a trigger NOTIFYs, and each replica's listener
//! pushes it to its browsers (server-sent events). Cancelling works the same way: the
//! request marks the row, and the runner (on whichever replica) sees the mark on its next
//! write, or at once when the cancel arrives at its own replica.

use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::incidents::{
    EvidenceFact, EvidenceTable, FindingSeverity, MAX_EVIDENCE_ROWS, MAX_EVIDENCE_TABLES,
    TimelineKind, incident_key,
};
use crate::probe_runs::{CodeInfo, ParamInfo, ProbeInfo, ProbeRun, ProbeRunDetail, RunStatus};
use crate::services::incidents::{cap_excerpt, event, find, finding_view};
use crate::storage::incidents as istore;
use crate::storage::probe_runs as store;
use crate::targets::TargetKind;
use probes::framework::{self, Params, Progress, ProgressSink};
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How many runs may go at once against one target (across all replicas).
pub const DEFAULT_PER_TARGET_LIMIT: i64 = 2;
/// A running run whose heartbeat is older than this is considered orphaned.
pub const ORPHAN_AFTER_SECS: i64 = 30;
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How long a finished run's result is retried while the database is unavailable: inside
/// [`ORPHAN_AFTER_SECS`] less one heartbeat, so the reaper never fails a run still saving.
const FINISH_RETRY_FOR: Duration = Duration::from_secs(20);

/// Runs probes in the background of this process and remembers how to cancel them.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<RunnerInner>,
}

struct RunnerInner {
    tokens: Mutex<HashMap<i64, CancellationToken>>,
    per_target: i64,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("per_target", &self.inner.per_target)
            .finish_non_exhaustive()
    }
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new(DEFAULT_PER_TARGET_LIMIT)
    }
}

impl Runner {
    pub fn new(per_target: i64) -> Self {
        Runner {
            inner: Arc::new(RunnerInner {
                tokens: Mutex::new(HashMap::new()),
                per_target: per_target.max(1),
            }),
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CancellationToken>> {
        self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cancel_local(&self, id: i64) {
        if let Some(t) = self.tokens().get(&id) {
            t.cancel();
        }
    }

    /// Runs in progress in this process.
    pub fn active(&self) -> usize {
        self.tokens().len()
    }
}

fn severity(s: framework::Severity) -> FindingSeverity {
    match s {
        framework::Severity::Critical => FindingSeverity::Critical,
        framework::Severity::Warning => FindingSeverity::Warning,
        framework::Severity::Info => FindingSeverity::Info,
    }
}

/// The catalogue: every registered probe with its parameters, steps and finding codes.
pub fn catalogue() -> Vec<ProbeInfo> {
    crate::kinds::probes()
        .into_iter()
        .map(|p| {
            let s = p.spec();
            ProbeInfo {
                name: s.name.into(),
                kind: TargetKind::from_static(s.kind),
                title: s.title.into(),
                description: s.description.into(),
                params: s
                    .params
                    .iter()
                    .chain(framework::COMMON_PARAMS)
                    .map(|prm| {
                        let (kind, min, max) = match prm.kind {
                            framework::ParamKind::Int { min, max } => ("int", Some(min), Some(max)),
                            framework::ParamKind::Text { .. } => ("text", None, None),
                            framework::ParamKind::Bool => ("bool", None, None),
                        };
                        ParamInfo {
                            name: prm.name.into(),
                            label: prm.label.into(),
                            help: prm.help.into(),
                            kind: kind.into(),
                            min,
                            max,
                            default: prm.default.into(),
                        }
                    })
                    .collect(),
                steps: s.steps.iter().map(|x| x.to_string()).collect(),
                codes: s
                    .codes
                    .iter()
                    .chain(framework::COMMON_CODES)
                    .map(|c| CodeInfo {
                        code: c.code.into(),
                        severity: severity(c.severity),
                        meaning: c.meaning.into(),
                        remediation: c.remediation.into(),
                    })
                    .collect(),
                run_timeout_s: s.run_timeout_s,
            }
        })
        .collect()
}

/// A parameter value as JSON may carry it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl ParamValue {
    fn text(&self) -> String {
        match self {
            ParamValue::Text(s) => s.clone(),
            ParamValue::Int(n) => n.to_string(),
            ParamValue::Bool(b) => b.to_string(),
        }
    }
}

/// `POST /api/v1/targets/{id}/probe-runs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    pub probe: String,
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    #[serde(default)]
    pub incident_key: Option<String>,
}

/// Starts a run and returns at once; the run goes on in the background.
pub async fn start(
    pool: &PgPool,
    runner: &Runner,
    access: &crate::reach::Access,
    who: &Principal,
    target_id: i64,
    req: StartRun,
) -> DomainResult<ProbeRun> {
    who.require(Role::Responder)?;
    let probe = crate::kinds::find_probe(req.probe.trim()).ok_or_else(|| {
        let names: Vec<&str> = crate::kinds::probes()
            .iter()
            .map(|p| p.spec().name)
            .collect();
        DomainError::invalid(format!(
            "unknown probe {:?}; known: {}",
            req.probe,
            names.join(", ")
        ))
    })?;
    let spec = probe.spec();
    let raw: BTreeMap<String, String> = req
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    let params = framework::validate_params(spec, &raw).map_err(DomainError::Invalid)?;
    let target = super::resolve::row(pool, target_id).await?;
    if target.kind.as_str() != spec.kind {
        return Err(DomainError::invalid(format!(
            "the {} probe runs against {} targets; {} is a {} target",
            spec.name, spec.kind, target.name, target.kind
        )));
    }
    let secret = super::resolve::open_secret(access.key.as_ref(), &target)?;
    let url = super::resolve::connect_address(access, &target, secret.as_deref())
        .await
        .map_err(DomainError::Invalid)?;
    let conn = framework::Connection {
        allowed: access.reach.networks.clone(),
        url,
        display: target.connection.clone(),
    };
    let mut tx = pool.begin().await?;
    let incident_id = match req
        .incident_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        Some(k) => {
            let inc = find(&mut tx, k).await?;
            if !inc.status.is_open() {
                return Err(DomainError::conflict(format!(
                    "{} is {}: re-open it to add probe runs",
                    incident_key(inc.number),
                    inc.status.as_str()
                )));
            }
            Some(inc.id)
        }
        None => None,
    };
    // Serialise starts on this target so two requests cannot both pass the limit.
    sqlx::query("SELECT pg_advisory_xact_lock(7311, $1::int)")
        .bind((target_id % i32::MAX as i64) as i32)
        .execute(&mut *tx)
        .await?;
    let running = store::running_on(&mut *tx, target_id).await?;
    if running >= runner.inner.per_target {
        return Err(DomainError::RateLimited {
            message: format!(
                "{running} runs are already going on {}; the limit is {} at once: wait for one to finish or cancel it",
                target.name, runner.inner.per_target
            ),
            retry_after_secs: 5,
        });
    }
    let steps: Vec<serde_json::Value> = spec
        .steps
        .iter()
        .map(|s| serde_json::json!({"name": s, "status": "pending", "elapsed_ms": 0}))
        .collect();
    let id = store::insert(
        &mut *tx,
        store::NewRun {
            target_id,
            target_name: &target.name,
            target_kind: target.kind.clone(),
            probe: spec.name,
            params: serde_json::to_value(&params.0).map_err(DomainError::internal)?,
            incident_id,
            started_by: &who.name,
            steps: serde_json::Value::Array(steps),
        },
    )
    .await?;
    if let Some(iid) = incident_id {
        event(
            &mut tx,
            iid,
            who,
            TimelineKind::ProbeRunStarted,
            &format!("{} probe started on {} (run {id})", spec.name, target.name),
            serde_json::json!({ "run_id": id, "probe": spec.name, "target": target.name }),
        )
        .await?;
    }
    tx.commit().await?;
    let token = CancellationToken::new();
    runner.tokens().insert(id, token.clone());
    let ctx = Background {
        pool: pool.clone(),
        runner: runner.clone(),
        who: who.clone(),
        id,
        target_name: target.name.clone(),
    };
    tokio::spawn(ctx.run(probe, conn, params, token));
    get_run(pool, who, id).await.map(|d| d.run)
}

struct WatchSink(watch::Sender<Progress>);

impl ProgressSink for WatchSink {
    fn progress(&self, p: &Progress) {
        self.0.send_replace(p.clone());
    }
}

struct Background {
    pool: PgPool,
    runner: Runner,
    who: Principal,
    id: i64,
    target_name: String,
}

impl Background {
    async fn run(
        self,
        probe: &'static dyn framework::Probe,
        conn: framework::Connection,
        params: Params,
        token: CancellationToken,
    ) {
        let (tx, rx) = watch::channel(Progress::default());
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn(write_progress(
            self.pool.clone(),
            self.id,
            rx,
            token.clone(),
            writer_stop.clone(),
        ));
        let sink: Arc<dyn ProgressSink> = Arc::new(WatchSink(tx));
        let secret_free_display = conn.display.clone();
        // The probe runs in its own task so that even a panic in it ends as a failed run.
        let job =
            tokio::spawn(async move { framework::run(probe, &conn, &params, token, sink).await });
        let outcome = match job.await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(run = self.id, error = %e, "probe task failed");
                framework::RunOutcome {
                    result: Err(probes::ProbeError::Internal(
                        "the probe stopped unexpectedly (see the server log)".into(),
                    )),
                    findings: vec![],
                    steps: vec![],
                    evidence: BTreeMap::new(),
                    duration: Duration::ZERO,
                    commands: 0,
                }
            }
        };
        writer_stop.cancel();
        let _ = writer.await;
        // The result is only in memory until it is committed: while the database is away
        // (restarting, failing over) it is retried, within the orphan window, rather than
        // lost with the run left "running" until the reaper fails it.
        let give_up = tokio::time::Instant::now() + FINISH_RETRY_FOR;
        loop {
            match self
                .finish(probe.spec().name, &secret_free_display, &outcome)
                .await
            {
                Ok(()) => break,
                Err(DomainError::Unavailable { .. }) if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::error!(run = self.id, error = %e, "could not record the probe run's result");
                    break;
                }
            }
        }
        self.runner.tokens().remove(&self.id);
    }

    async fn finish(
        &self,
        probe: &str,
        display: &str,
        o: &framework::RunOutcome,
    ) -> DomainResult<()> {
        let status = RunStatus::of(o);
        let error = o.error_text();
        let mut tx = self.pool.begin().await?;
        let row = store::by_id(&mut *tx, self.id)
            .await?
            .ok_or_else(|| DomainError::internal("probe run vanished"))?;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &o.findings {
            *counts.entry(f.severity.as_str()).or_default() += 1;
            let mut evidence = crate::incidents::Evidence {
                facts: f
                    .facts
                    .iter()
                    .take(100)
                    .map(|(n, v)| EvidenceFact {
                        name: n.clone(),
                        value: v.chars().take(4000).collect(),
                    })
                    .collect(),
                command: f.command.clone(),
                excerpt: f.excerpt.clone(),
                tables: f
                    .tables
                    .iter()
                    .take(MAX_EVIDENCE_TABLES)
                    .map(|t| EvidenceTable {
                        title: t.title.clone(),
                        columns: t.columns.clone(),
                        rows: t
                            .rows
                            .iter()
                            .take(MAX_EVIDENCE_ROWS)
                            .map(|r| r.iter().map(|c| c.chars().take(2000).collect()).collect())
                            .collect(),
                    })
                    .collect(),
                charts: f
                    .charts
                    .iter()
                    .take(crate::incidents::MAX_EVIDENCE_CHARTS)
                    .map(|c| crate::incidents::EvidenceChart {
                        title: c.title.chars().take(200).collect(),
                        unit: c.unit.chars().take(40).collect(),
                        series: c
                            .series
                            .iter()
                            .take(crate::incidents::MAX_CHART_SERIES)
                            .map(|s| crate::incidents::EvidenceSeries {
                                name: s.name.chars().take(200).collect(),
                                points: s
                                    .points
                                    .iter()
                                    .filter(|(_, v)| v.is_finite())
                                    .take(crate::incidents::MAX_CHART_POINTS)
                                    .copied()
                                    .collect(),
                            })
                            .collect(),
                    })
                    .collect(),
            };
            cap_excerpt(&mut evidence);
            let title: String = f.title.chars().take(300).collect();
            istore::insert_finding(
                &mut *tx,
                istore::NewFindingRow {
                    incident_id: row.incident_id,
                    code: &f.code,
                    source_kind: "probe",
                    source_probe: Some(probe),
                    source_target: Some(&self.target_name),
                    severity: severity(f.severity),
                    title: &title,
                    evidence: serde_json::to_value(&evidence).map_err(DomainError::internal)?,
                    remediation: &f.remediation,
                    doc_link: None,
                    created_by: &self.who.name,
                    probe_run_id: Some(self.id),
                },
            )
            .await?;
        }
        store::finish(
            &mut *tx,
            self.id,
            store::Finish {
                status,
                error: error.as_deref(),
                steps: serde_json::to_value(&o.steps).map_err(DomainError::internal)?,
                commands: o.commands as i64,
                finding_count: o.findings.len() as i32,
                evidence: serde_json::to_value(&o.evidence).map_err(DomainError::internal)?,
                duration_ms: o.duration.as_millis() as i64,
            },
        )
        .await?;
        if let Some(iid) = row.incident_id {
            let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            event(
                &mut tx,
                iid,
                &self.who,
                TimelineKind::ProbeRunFinished,
                &format!(
                    "{probe} probe on {} {} in {}: {}{}",
                    self.target_name,
                    status.label(),
                    if o.duration.as_millis() < 1000 {
                        format!("{} ms", o.duration.as_millis())
                    } else {
                        format!("{:.1} s", o.duration.as_secs_f64())
                    },
                    if summary.is_empty() { "no findings".to_string() } else { summary.join(", ") },
                    error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                ),
                serde_json::json!({ "run_id": self.id, "status": status, "findings": o.findings.len(), "target": display }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Writes progress to the run's row (at most every 250 ms, and a heartbeat every 5 s) and
/// cancels the run when someone asked for it on another replica.
async fn write_progress(
    pool: PgPool,
    id: i64,
    mut rx: watch::Receiver<Progress>,
    cancel: CancellationToken,
    stop: CancellationToken,
) {
    let mut last_write = tokio::time::Instant::now();
    loop {
        let changed = tokio::select! {
            r = rx.changed() => r.is_ok(),
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => true,
            _ = stop.cancelled() => return,
        };
        if !changed {
            return;
        }
        let since = last_write.elapsed();
        if since < PROGRESS_EVERY {
            tokio::select! {
                _ = tokio::time::sleep(PROGRESS_EVERY - since) => {}
                _ = stop.cancelled() => return,
            }
        }
        let p = rx.borrow_and_update().clone();
        let steps = serde_json::to_value(&p.steps).unwrap_or_default();
        match store::progress(&pool, id, &steps, p.commands as i64).await {
            Ok(true) => cancel.cancel(),
            Ok(false) => {}
            Err(e) => tracing::warn!(run = id, error = %e, "could not write probe progress"),
        }
        last_write = tokio::time::Instant::now();
    }
}

pub async fn get_run(pool: &PgPool, who: &Principal, id: i64) -> DomainResult<ProbeRunDetail> {
    who.require(Role::Viewer)?;
    let row = store::by_id(pool, id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no probe run {id}")))?;
    let findings = if row.status.is_done() {
        istore::findings_of_run(pool, id)
            .await?
            .into_iter()
            .map(finding_view)
            .collect()
    } else {
        vec![]
    };
    let evidence = if row.status.is_done() {
        crate::storage::labels_from_json(&store::evidence(pool, id).await?)
    } else {
        BTreeMap::new()
    };
    Ok(ProbeRunDetail {
        run: row.view(),
        findings,
        evidence,
    })
}

/// The newest runs of a target (newest first).
pub async fn runs_of_target(
    pool: &PgPool,
    who: &Principal,
    target_id: i64,
    limit: i64,
) -> DomainResult<Vec<ProbeRun>> {
    who.require(Role::Viewer)?;
    Ok(store::for_target(pool, target_id, limit.clamp(1, 200))
        .await?
        .iter()
        .map(store::RunRow::view)
        .collect())
}

/// The runs attached to an incident (newest first).
pub async fn runs_of_incident(
    pool: &PgPool,
    who: &Principal,
    key: &str,
) -> DomainResult<Vec<ProbeRun>> {
    who.require(Role::Viewer)?;
    let mut c = pool.acquire().await?;
    let inc = find(&mut c, key).await?;
    Ok(store::for_incident(&mut *c, inc.id, 100)
        .await?
        .iter()
        .map(store::RunRow::view)
        .collect())
}

/// The newest run of each target, by target id.
pub async fn latest_runs(pool: &PgPool, who: &Principal) -> DomainResult<HashMap<i64, ProbeRun>> {
    who.require(Role::Viewer)?;
    Ok(store::latest_per_target(pool)
        .await?
        .iter()
        .filter_map(|r| r.target_id.map(|t| (t, r.view())))
        .collect())
}

pub async fn cancel(
    pool: &PgPool,
    runner: &Runner,
    who: &Principal,
    id: i64,
) -> DomainResult<ProbeRun> {
    who.require(Role::Responder)?;
    let n = store::request_cancel(pool, id).await?;
    if n == 0 {
        let row = store::by_id(pool, id)
            .await?
            .ok_or_else(|| DomainError::not_found(format!("no probe run {id}")))?;
        return Err(DomainError::conflict(format!(
            "probe run {id} already ended ({})",
            row.status.label()
        )));
    }
    runner.cancel_local(id);
    Ok(get_run(pool, who, id).await?.run)
}

/// Attaches a standalone run (and its findings) to an incident.
pub async fn attach(pool: &PgPool, who: &Principal, id: i64, key: &str) -> DomainResult<ProbeRun> {
    who.require(Role::Responder)?;
    let mut tx = pool.begin().await?;
    let inc = find(&mut tx, key).await?;
    let row = store::by_id(&mut *tx, id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no probe run {id}")))?;
    if let Some(n) = row.incident_number {
        return Err(DomainError::conflict(format!(
            "probe run {id} already belongs to {}",
            incident_key(n)
        )));
    }
    if !inc.status.is_open() {
        return Err(DomainError::conflict(format!(
            "{} is {}: re-open it to add probe runs",
            incident_key(inc.number),
            inc.status.as_str()
        )));
    }
    // Two attaches at once both saw the run unattached; only the one whose UPDATE matched
    // goes on (the other's UPDATE waited for the first and then matched nothing).
    if store::attach(&mut *tx, id, inc.id).await? == 0 {
        return Err(DomainError::conflict(format!(
            "probe run {id} was just attached to another incident"
        )));
    }
    let moved = store::attach_findings(&mut *tx, id, inc.id).await?;
    let kind = if row.status.is_done() {
        TimelineKind::ProbeRunFinished
    } else {
        TimelineKind::ProbeRunStarted
    };
    event(
        &mut tx,
        inc.id,
        who,
        kind,
        &format!(
            "attached {} probe run {id} on {} ({}, {moved} findings)",
            row.probe,
            row.target_name,
            row.status.label()
        ),
        serde_json::json!({ "run_id": id, "attached": true, "findings": moved }),
    )
    .await?;
    tx.commit().await?;
    Ok(get_run(pool, who, id).await?.run)
}
