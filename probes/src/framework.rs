//! The probe framework: what every probe declares ([`ProbeSpec`]), the one trait they
//! implement ([`Probe`]), and the run loop that bounds, paces, cancels and reports them
//! ([`run`]).
//!
//! Design notes:
//! - A probe's *phases* (the ordered steps a responder sees: "Read INFO", "Sample keys")
//!   are declared in its spec; each network call inside a phase goes through [`Ctx::net`],
//!   which applies the per-step time limit and the run's cancellation. A stuck target
//!   therefore ends the run within one step limit, never hangs it.
//! - Findings are emitted as soon as they are known ([`Ctx::finding`]), so a run that fails
//!   half-way keeps what it already learned, plus one finding that says why it failed.
//! - Progress goes to a [`ProgressSink`]; the probe crate does not know where it ends up
//!   (the domain layer writes it to PostgreSQL and the browser follows it there).

use crate::ProbeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A table of evidence (e.g. the top keys, the blocking chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: &str, columns: &[&str]) -> Self {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: vec![],
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// A small time-series chart of the evidence (the series a query returned), drawn on the
/// run page. Points are (unix seconds, value); values that are not finite are dropped, so
/// charts compare equal to themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Chart {
    pub title: String,
    /// The unit of the values (`bytes`, `ratio`, `seconds`, `per second`, …).
    pub unit: String,
    pub series: Vec<ChartSeries>,
}

impl Eq for Chart {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ChartSeries {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

/// The most series, and points per series, a chart keeps.
pub const MAX_CHART_SERIES: usize = 8;
pub const MAX_CHART_POINTS: usize = 400;

impl Chart {
    pub fn new(title: impl Into<String>, unit: &str) -> Chart {
        Chart {
            title: title.into(),
            unit: unit.into(),
            series: vec![],
        }
    }
    /// Adds a series (finite points only, thinned evenly to [`MAX_CHART_POINTS`]); past
    /// [`MAX_CHART_SERIES`] series are dropped.
    pub fn series(mut self, name: impl Into<String>, points: &[(f64, f64)]) -> Chart {
        if self.series.len() >= MAX_CHART_SERIES {
            return self;
        }
        let finite: Vec<(i64, f64)> = points
            .iter()
            .filter(|(t, v)| t.is_finite() && v.is_finite())
            .map(|(t, v)| (t.round() as i64, *v))
            .collect();
        let every = finite.len().div_ceil(MAX_CHART_POINTS).max(1);
        let points = finite.into_iter().step_by(every).collect();
        self.series.push(ChartSeries {
            name: name.into(),
            points,
        });
        self
    }
}

/// What a probe found: a stable code, evidence and the remediation (markdown; commands in
/// fenced code blocks become copy buttons).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub title: String,
    pub facts: Vec<(String, String)>,
    /// The command or query that produced the evidence.
    pub command: Option<String>,
    pub excerpt: Option<String>,
    pub tables: Vec<Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<Chart>,
    pub remediation: String,
}

impl Finding {
    pub fn new(code: &str, severity: Severity, title: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity,
            title: title.into(),
            facts: vec![],
            command: None,
            excerpt: None,
            tables: vec![],
            charts: vec![],
            remediation: String::new(),
        }
    }
    pub fn fact(mut self, name: &str, value: impl ToString) -> Self {
        self.facts.push((name.into(), value.to_string()));
        self
    }
    pub fn command(mut self, c: impl Into<String>) -> Self {
        self.command = Some(c.into());
        self
    }
    pub fn excerpt(mut self, e: impl Into<String>) -> Self {
        self.excerpt = Some(e.into());
        self
    }
    pub fn table(mut self, t: Table) -> Self {
        self.tables.push(t);
        self
    }
    pub fn chart(mut self, c: Chart) -> Self {
        if !c.series.iter().all(|s| s.points.is_empty()) {
            self.charts.push(c);
        }
        self
    }
    pub fn remediation(mut self, r: impl Into<String>) -> Self {
        self.remediation = r.into();
        self
    }
}

/// One documented finding code.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CodeDoc {
    pub code: &'static str,
    /// The highest severity it is raised with.
    pub severity: Severity,
    pub meaning: &'static str,
    pub remediation: &'static str,
}

/// The documented remediation of `code` in `codes` (empty for a code not listed).
pub fn remediation(codes: &[CodeDoc], code: &str) -> &'static str {
    codes
        .iter()
        .find(|c| c.code == code)
        .map(|c| c.remediation)
        .unwrap_or("")
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    Int { min: i64, max: i64 },
    Text { max_len: usize },
    Bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: ParamKind,
    pub default: &'static str,
}

impl ParamSpec {
    /// A whole-number parameter between `min` and `max`.
    pub const fn int(
        name: &'static str,
        label: &'static str,
        help: &'static str,
        min: i64,
        max: i64,
        default: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            name,
            label,
            help,
            kind: ParamKind::Int { min, max },
            default,
        }
    }

    /// A text parameter of at most `max_len` characters (no control characters).
    pub const fn text(
        name: &'static str,
        label: &'static str,
        help: &'static str,
        max_len: usize,
        default: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            name,
            label,
            help,
            kind: ParamKind::Text { max_len },
            default,
        }
    }
}

/// A probe's own check of its parameters (see [`ProbeSpec::check`]).
pub type ParamsCheck = fn(&Params) -> Result<(), String>;

/// What a probe declares about itself; the catalogue (`GET /api/v1/probes`) is these.
#[derive(Debug, Serialize)]
pub struct ProbeSpec {
    pub name: &'static str,
    /// The target kind it runs against (`redis`, `postgres`, …).
    pub kind: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub params: &'static [ParamSpec],
    /// The ordered phases a run goes through.
    pub steps: &'static [&'static str],
    pub codes: &'static [CodeDoc],
    /// The whole run's limit (every single network step also has `step_timeout_s`).
    pub run_timeout_s: u64,
    /// Checks that need more than a parameter's type and range (a label selector, a
    /// duration), run when a run is asked for: an error refuses the run (400), nothing starts.
    #[serde(skip)]
    pub check: Option<ParamsCheck>,
}

/// Parameters every probe accepts, in addition to its own.
pub const COMMON_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "step_timeout_s",
    label: "Step time limit (s)",
    help: "Each network step against the target must answer within this time.",
    kind: ParamKind::Int { min: 1, max: 60 },
    default: "10",
}];

/// Codes any probe can raise when the target itself cannot be examined.
pub const COMMON_CODES: &[CodeDoc] = &[
    CodeDoc {
        code: "TARGET_UNREACHABLE",
        severity: Severity::Critical,
        meaning: "The target refused or dropped the connection, or its address does not resolve.",
        remediation: "Check the process is running and listening on the address, and that the network path (security groups, network policies) allows Lookout in.",
    },
    CodeDoc {
        code: "TARGET_AUTH_FAILED",
        severity: Severity::Critical,
        meaning: "The target refused the stored credentials.",
        remediation: "Check the target's username and password (Targets → edit → replace the secret); check ACLs / pg_hba.conf.",
    },
    CodeDoc {
        code: "TARGET_TIMEOUT",
        severity: Severity::Critical,
        meaning: "A step did not answer within its time limit: the target is overloaded, paused or partitioned.",
        remediation: "Look at the target's CPU and latency; on Redis check `CLIENT LIST` for a paused or blocking client; on PostgreSQL look for lock waits.",
    },
    CodeDoc {
        code: "TARGET_ERROR",
        severity: Severity::Warning,
        meaning: "The target answered a probe step with an error (missing permission, unsupported command).",
        remediation: "Read the error; grant the probe's role the read-only privileges it names (e.g. `pg_monitor`).",
    },
];

/// Validated parameters (every declared parameter present, defaults filled in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn int(&self, name: &str) -> i64 {
        self.0.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    pub fn text(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn flag(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v == "true")
    }
}

/// Checks raw parameters against the spec: unknown names, wrong types and out-of-range
/// values are refused with a message naming the parameter; missing ones get defaults.
pub fn validate_params(spec: &ProbeSpec, raw: &BTreeMap<String, String>) -> Result<Params, String> {
    let all: Vec<&ParamSpec> = spec.params.iter().chain(COMMON_PARAMS).collect();
    for name in raw.keys() {
        if !all.iter().any(|p| p.name == name) {
            let known: Vec<&str> = all.iter().map(|p| p.name).collect();
            return Err(format!(
                "unknown parameter {name:?} for probe {}; known: {}",
                spec.name,
                known.join(", ")
            ));
        }
    }
    let mut out = BTreeMap::new();
    for p in all {
        let v = raw
            .get(p.name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(p.default);
        let v = match p.kind {
            ParamKind::Int { min, max } => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("parameter {} must be a whole number", p.name))?;
                if n < min || n > max {
                    return Err(format!(
                        "parameter {} must be between {min} and {max} (got {n})",
                        p.name
                    ));
                }
                n.to_string()
            }
            ParamKind::Bool => match v {
                "true" | "on" | "1" | "yes" => "true".into(),
                "false" | "off" | "0" | "no" => "false".into(),
                _ => return Err(format!("parameter {} must be true or false", p.name)),
            },
            ParamKind::Text { max_len } => {
                if v.chars().count() > max_len {
                    return Err(format!(
                        "parameter {} is longer than {max_len} characters",
                        p.name
                    ));
                }
                if v.chars().any(char::is_control) {
                    return Err(format!("parameter {} has control characters", p.name));
                }
                v.to_string()
            }
        };
        out.insert(p.name.to_string(), v);
    }
    let params = Params(out);
    if let Some(check) = spec.check {
        check(&params)?;
    }
    Ok(params)
}

/// How to reach the target: a URL carrying credentials (never shown) and its display form.
#[derive(Clone)]
pub struct Connection {
    /// Connect with this (may contain the password).
    pub url: String,
    /// Show this.
    pub display: String,
    /// Where the probe may connect beyond the URL's own hosts (the brokers a Kafka cluster
    /// advertises); empty: anywhere.
    pub allowed: Vec<crate::net::Network>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("display", &self.display)
            .finish_non_exhaustive()
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The one trait every probe implements. Registered in [`crate::registry`].
pub trait Probe: Send + Sync {
    fn spec(&self) -> &'static ProbeSpec;
    /// Runs the probe. Network calls go through [`Ctx::net`]; findings through
    /// [`Ctx::finding`]. An `Err` ends the run as failed (or timed out) with a finding.
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        conn: &'a Connection,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), ProbeError>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub status: StepStatus,
    pub elapsed_ms: u64,
    /// e.g. "sampled 4,000 of 10,000 keys"
    pub detail: Option<String>,
}

/// A snapshot of a run's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Progress {
    pub steps: Vec<StepRecord>,
    pub current: Option<String>,
    pub elapsed_ms: u64,
    pub findings: usize,
    pub commands: u64,
}

pub trait ProgressSink: Send + Sync {
    fn progress(&self, p: &Progress);
}

impl ProgressSink for () {
    fn progress(&self, _: &Progress) {}
}

struct CtxState {
    steps: Vec<StepRecord>,
    step_started: Instant,
    findings: Vec<Finding>,
    evidence: BTreeMap<String, String>,
    commands: u64,
    /// Token bucket for pacing: commands allowed to be sent before `next_free`.
    pace_next: Instant,
}

/// The largest raw evidence a run keeps (all of [`Ctx::evidence`] together).
pub const MAX_RUN_EVIDENCE_BYTES: usize = 64 * 1024;

/// What a probe sees of its run.
pub struct Ctx {
    step_timeout: Duration,
    cancel: CancellationToken,
    sink: Arc<dyn ProgressSink>,
    started: Instant,
    /// Commands per second the probe may send (0 = unpaced); a probe may lower it while it
    /// runs (backing off when the target slows down) and raise it again.
    pace_per_sec: std::sync::atomic::AtomicU32,
    state: Mutex<CtxState>,
}

impl Ctx {
    pub fn new(
        spec: &ProbeSpec,
        step_timeout: Duration,
        cancel: CancellationToken,
        sink: Arc<dyn ProgressSink>,
    ) -> Self {
        let now = Instant::now();
        Ctx {
            step_timeout,
            cancel,
            sink,
            started: now,
            pace_per_sec: std::sync::atomic::AtomicU32::new(0),
            state: Mutex::new(CtxState {
                steps: spec
                    .steps
                    .iter()
                    .map(|s| StepRecord {
                        name: s.to_string(),
                        status: StepStatus::Pending,
                        elapsed_ms: 0,
                        detail: None,
                    })
                    .collect(),
                step_started: now,
                findings: vec![],
                evidence: BTreeMap::new(),
                commands: 0,
                pace_next: now,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CtxState> {
        // A poisoned lock only means another task panicked mid-update; the data is plain.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn step_timeout(&self) -> Duration {
        self.step_timeout
    }

    /// Limits the rate of commands sent to the target (see [`Ctx::pace`]).
    pub fn set_pace(&mut self, per_sec: u32) {
        self.set_pace_now(per_sec);
    }

    /// Changes the pace while the probe runs (0 = unpaced).
    pub fn set_pace_now(&self, per_sec: u32) {
        self.pace_per_sec
            .store(per_sec, std::sync::atomic::Ordering::Relaxed);
    }

    /// The pace in force (0 = unpaced).
    pub fn pace_now(&self) -> u32 {
        self.pace_per_sec.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn snapshot(&self, st: &CtxState) -> Progress {
        Progress {
            steps: st.steps.clone(),
            current: st
                .steps
                .iter()
                .find(|s| s.status == StepStatus::Running)
                .map(|s| s.name.clone()),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            findings: st.findings.len(),
            commands: st.commands,
        }
    }

    fn publish(&self) {
        let p = {
            let st = self.lock();
            self.snapshot(&st)
        };
        self.sink.progress(&p);
    }

    /// Marks `name` (one of the spec's steps) as running; the previous running step is done.
    pub fn phase(&self, name: &str) {
        {
            let mut st = self.lock();
            let now = Instant::now();
            let started = st.step_started;
            for s in st.steps.iter_mut() {
                if s.status == StepStatus::Running {
                    s.status = StepStatus::Done;
                    s.elapsed_ms = now.duration_since(started).as_millis() as u64;
                }
            }
            if let Some(s) = st.steps.iter_mut().find(|s| s.name == name) {
                s.status = StepStatus::Running;
            }
            st.step_started = now;
        }
        self.publish();
    }

    /// A line of detail for the running step ("sampled 4,000 of 10,000 keys").
    pub fn detail(&self, text: impl Into<String>) {
        {
            let mut st = self.lock();
            let text = text.into();
            if let Some(s) = st
                .steps
                .iter_mut()
                .find(|s| s.status == StepStatus::Running)
            {
                s.detail = Some(text);
            }
        }
        self.publish();
    }

    pub fn finding(&self, f: Finding) {
        self.lock().findings.push(f);
        self.publish();
    }

    pub fn has_finding(&self, code: &str) -> bool {
        self.lock().findings.iter().any(|f| f.code == code)
    }

    /// Keeps a piece of raw evidence with the run (capped in total).
    pub fn evidence(&self, name: &str, text: &str) {
        let mut st = self.lock();
        let used: usize = st.evidence.values().map(String::len).sum();
        let room = MAX_RUN_EVIDENCE_BYTES.saturating_sub(used);
        if room == 0 {
            return;
        }
        let mut cut = text.len().min(room);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        st.evidence.insert(name.into(), text[..cut].to_string());
    }

    /// Counts `n` commands against the pace and waits if they would exceed it.
    pub async fn pace(&self, n: u64) -> Result<(), ProbeError> {
        let wait = {
            let mut st = self.lock();
            st.commands += n;
            let pace = self.pace_now();
            if pace == 0 {
                Duration::ZERO
            } else {
                let now = Instant::now();
                let cost = Duration::from_secs_f64(n as f64 / pace as f64);
                // The batch's own cost is paid before it goes, so over any stretch of the
                // run the rate never exceeds the pace (no free first burst); a sleep that
                // overran (timers tick in milliseconds) is made up for, up to 2 ms of it,
                // so the pace is kept rather than undershot without bursts.
                let floor = now.checked_sub(Duration::from_millis(2)).unwrap_or(now);
                st.pace_next = st.pace_next.max(floor) + cost;
                st.pace_next.duration_since(now)
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.cancel.cancelled() => return Err(ProbeError::Cancelled),
            }
        }
        Ok(())
    }

    pub fn commands(&self) -> u64 {
        self.lock().commands
    }

    /// Counts `n` commands a probe sent under a pace of its own (see
    /// [`crate::redis::audit`]'s paced walk), so the run's command count stays whole.
    pub fn count_commands(&self, n: u64) {
        self.lock().commands += n;
    }

    /// The run was cancelled (for work that cannot wait on [`Ctx::net`]).
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Runs one network step within the step limit, and stops at once if the run is
    /// cancelled. `what` names the step in the timeout message.
    pub async fn net<T, E>(
        &self,
        target: &str,
        fut: impl Future<Output = Result<T, E>>,
        classify: impl FnOnce(E) -> ProbeError,
    ) -> Result<T, ProbeError> {
        tokio::select! {
            r = tokio::time::timeout(self.step_timeout, fut) => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(classify(e)),
                Err(_) => Err(ProbeError::TimedOut {
                    target: target.into(),
                    limit: crate::secs(self.step_timeout),
                }),
            },
            _ = self.cancel.cancelled() => Err(ProbeError::Cancelled),
        }
    }

    /// Sleeps (e.g. between two samples), stopping early on cancellation.
    pub async fn sleep(&self, d: Duration) -> Result<(), ProbeError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancel.cancelled() => Err(ProbeError::Cancelled),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How the run ended: `Ok`, or why not (`Cancelled`, `TimedOut`, or a failure). The
    /// run's status as stored and shown is `domain::probe_runs::RunStatus`, derived from it.
    pub result: Result<(), ProbeError>,
    pub findings: Vec<Finding>,
    pub steps: Vec<StepRecord>,
    pub evidence: BTreeMap<String, String>,
    pub duration: Duration,
    pub commands: u64,
}

impl RunOutcome {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
    pub fn cancelled(&self) -> bool {
        matches!(self.result, Err(ProbeError::Cancelled))
    }
    pub fn timed_out(&self) -> bool {
        matches!(self.result, Err(ProbeError::TimedOut { .. }))
    }
    /// Ended by an error other than a cancel or the time limit.
    pub fn failed(&self) -> bool {
        self.result.is_err() && !self.cancelled() && !self.timed_out()
    }
    /// The error as stored with the run ("cancelled" for a cancel).
    pub fn error_text(&self) -> Option<String> {
        match &self.result {
            Ok(()) => None,
            Err(ProbeError::Cancelled) => Some("cancelled".into()),
            Err(e) => Some(e.to_string()),
        }
    }
}

/// The finding that records why a run could not finish.
pub fn failure_finding(e: &ProbeError, target: &str) -> Option<Finding> {
    let (code, remediation) = match e {
        ProbeError::Cancelled | ProbeError::Internal(_) => return None,
        ProbeError::Unreachable { .. } | ProbeError::InvalidTarget(_) => (
            "TARGET_UNREACHABLE",
            "Check that the process is running and listening on that address, and that the network path allows Lookout in (security groups, network policies, firewalls).",
        ),
        ProbeError::AuthFailed { .. } => (
            "TARGET_AUTH_FAILED",
            "Check the target's stored username and password (Targets → edit → replace the secret), and the server's ACLs or pg_hba.conf.",
        ),
        ProbeError::TimedOut { .. } => (
            "TARGET_TIMEOUT",
            "The target accepted the connection but did not answer in time: look at its CPU, at a paused or blocking client (`CLIENT LIST` on Redis), or at lock waits on PostgreSQL.",
        ),
        ProbeError::Server { .. } => (
            "TARGET_ERROR",
            "Read the error: the probe's user may lack a read-only privilege (e.g. `GRANT pg_monitor TO lookout;`), or the server does not support a command.",
        ),
    };
    Some(
        Finding::new(code, Severity::Critical, e.to_string())
            .fact("target", target)
            .remediation(remediation),
    )
}

/// Runs `probe` to the end: within the run limit, cancellable through `cancel`, reporting
/// progress to `sink`. Never panics on the target's behalf and never hangs.
pub async fn run(
    probe: &dyn Probe,
    conn: &Connection,
    params: &Params,
    cancel: CancellationToken,
    sink: Arc<dyn ProgressSink>,
) -> RunOutcome {
    let spec = probe.spec();
    let step = Duration::from_secs(params.int("step_timeout_s").clamp(1, 60) as u64);
    let mut ctx = Ctx::new(spec, step, cancel.clone(), sink);
    let pace = params.int("max_commands_per_sec");
    if pace > 0 {
        ctx.set_pace(pace as u32);
    }
    let limit = Duration::from_secs(spec.run_timeout_s);
    let result = tokio::select! {
        r = tokio::time::timeout(limit, probe.run(&ctx, conn, params)) => match r {
            Ok(r) => r,
            Err(_) => Err(ProbeError::TimedOut { target: conn.display.clone(), limit: crate::secs(limit) }),
        },
        _ = cancel.cancelled() => Err(ProbeError::Cancelled),
    };
    if let Err(e) = &result
        && let Some(f) = failure_finding(e, &conn.display)
    {
        ctx.lock().findings.push(f);
    }
    let mut st = ctx.lock();
    let now = Instant::now();
    let started = st.step_started;
    let failed = result.is_err();
    for s in st.steps.iter_mut() {
        match s.status {
            StepStatus::Running => {
                s.status = if failed {
                    StepStatus::Failed
                } else {
                    StepStatus::Done
                };
                s.elapsed_ms = now.duration_since(started).as_millis() as u64;
            }
            StepStatus::Pending => s.status = StepStatus::Skipped,
            _ => {}
        }
    }
    RunOutcome {
        result,
        findings: std::mem::take(&mut st.findings),
        steps: st.steps.clone(),
        evidence: std::mem::take(&mut st.evidence),
        duration: ctx.started.elapsed(),
        commands: st.commands,
    }
}

/// Thousands separators for counts shown to people ("18,400").
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// [`group`] for signed numbers ("-2,130").
pub fn group_i(n: i64) -> String {
    if n < 0 {
        format!("-{}", group(n.unsigned_abs()))
    } else {
        group(n as u64)
    }
}

/// Bytes for people ("1.5 MiB").
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: ProbeSpec = ProbeSpec {
        name: "t",
        kind: "redis",
        title: "t",
        description: "",
        params: &[
            ParamSpec {
                name: "n",
                label: "n",
                help: "",
                kind: ParamKind::Int { min: 1, max: 100 },
                default: "10",
            },
            ParamSpec {
                name: "b",
                label: "b",
                help: "",
                kind: ParamKind::Bool,
                default: "false",
            },
            ParamSpec {
                name: "s",
                label: "s",
                help: "",
                kind: ParamKind::Text { max_len: 5 },
                default: "",
            },
        ],
        steps: &["a", "b"],
        codes: &[],
        run_timeout_s: 5,
        check: None,
    };

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn params_get_defaults_and_are_checked() {
        let p = validate_params(&SPEC, &raw(&[])).unwrap();
        assert_eq!(p.int("n"), 10);
        assert_eq!(p.int("step_timeout_s"), 10);
        assert!(!p.flag("b"));
        let p = validate_params(&SPEC, &raw(&[("n", "7"), ("b", "on")])).unwrap();
        assert_eq!(p.int("n"), 7);
        assert!(p.flag("b"));
        for (bad, needle) in [
            (raw(&[("n", "0")]), "between 1 and 100"),
            (raw(&[("n", "x")]), "whole number"),
            (raw(&[("b", "maybe")]), "true or false"),
            (raw(&[("s", "toolong")]), "longer than 5"),
            (raw(&[("zzz", "1")]), "unknown parameter"),
            (raw(&[("step_timeout_s", "0")]), "between 1 and 60"),
        ] {
            let e = validate_params(&SPEC, &bad).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(group(18400), "18,400");
        assert_eq!(group(1_000_000), "1,000,000");
        assert_eq!(group(999), "999");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }

    struct Slow;
    impl Probe for Slow {
        fn spec(&self) -> &'static ProbeSpec {
            &SPEC
        }
        fn run<'a>(
            &'a self,
            ctx: &'a Ctx,
            _c: &'a Connection,
            _p: &'a Params,
        ) -> BoxFuture<'a, Result<(), ProbeError>> {
            Box::pin(async move {
                ctx.phase("a");
                ctx.finding(Finding::new("X_ONE", Severity::Info, "first"));
                ctx.phase("b");
                ctx.net(
                    "t",
                    async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok::<(), ProbeError>(())
                    },
                    |e| e,
                )
                .await
            })
        }
    }

    fn conn() -> Connection {
        Connection {
            allowed: vec![],
            url: "redis://x".into(),
            display: "redis://x".into(),
        }
    }

    #[tokio::test]
    async fn a_stuck_step_times_out_and_keeps_earlier_findings() {
        let p = validate_params(&SPEC, &raw(&[("step_timeout_s", "1")])).unwrap();
        let t = Instant::now();
        let out = run(&Slow, &conn(), &p, CancellationToken::new(), Arc::new(())).await;
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(out.timed_out(), "{:?}", out.result);
        let codes: Vec<_> = out.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["X_ONE", "TARGET_TIMEOUT"]);
        assert_eq!(out.steps[0].status, StepStatus::Done);
        assert_eq!(out.steps[1].status, StepStatus::Failed);
    }

    #[tokio::test]
    async fn cancelling_stops_the_run_at_once() {
        let p = validate_params(&SPEC, &raw(&[])).unwrap();
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel();
        });
        let t = Instant::now();
        let out = run(&Slow, &conn(), &p, cancel, Arc::new(())).await;
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(out.cancelled(), "{:?}", out.result);
        assert_eq!(out.findings.len(), 1, "no failure finding for a cancel");
    }

    #[tokio::test]
    async fn pacing_spreads_commands() {
        let mut ctx = Ctx::new(
            &SPEC,
            Duration::from_secs(1),
            CancellationToken::new(),
            Arc::new(()),
        );
        ctx.set_pace(1000);
        let t = Instant::now();
        for _ in 0..5 {
            ctx.pace(100).await.unwrap();
        }
        // 500 commands at 1,000/s take at least 0.5 s.
        assert!(
            t.elapsed() >= Duration::from_millis(495),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(ctx.commands(), 500);
    }
}
