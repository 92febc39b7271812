//! The Prometheus probe: what a responder reads off dashboards for one service, as findings
//! with the PromQL that showed it, its numbers and a chart of the series.
//!
//! For a label selector (`job="checkout"`) over a window: memory growth per instance (linear
//! regression with its fit, restarts split the series, time to the memory limit), the
//! 5xx ratio and p50/p99 latency from the server histograms compared with the same window a
//! day and a week earlier, circuit-breaker states (opossum's and resilience4j's metrics),
//! retries, and saturation (event-loop lag, CPU throttling, connection pools). One query
//! finds which of the configured metrics the service exports; after it, each section asks
//! a fixed, small number of queries (the run reports how many), so the probe's cost does
//! not grow with the number of series. Read-only: only `/api/v1/query` and `query_range`.

use super::rules::{self, Compared, MemoryLimits, RedLimits};
use super::{Client, QueryValue, RangeSeries};
use crate::ProbeError;
use crate::framework::{
    BoxFuture, Chart, CodeDoc, Connection, Ctx, Finding, ParamSpec, Params, Probe, ProbeSpec,
    Severity, Table,
};
use std::collections::{BTreeMap, BTreeSet};

pub struct PrometheusProbe;

const STEPS: &[&str] = &[
    "Connect",
    "Find the service's metrics",
    "Memory",
    "Errors and latency",
    "Circuit breakers and retries",
    "Saturation",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec::text(
        "selector",
        "Service selector",
        "Label matchers that pick the service's series, e.g. job=\"checkout\" or service=~\"checkout|cart\" (required).",
        500,
        "",
    ),
    ParamSpec::text(
        "window",
        "Window",
        "How far back to look: 30s to 7d (s, m, h, d or w), e.g. 1h or 6h.",
        10,
        "1h",
    ),
    ParamSpec::text(
        "memory_metrics",
        "Memory metrics",
        "The first of these the service exports is analysed, per instance.",
        500,
        "process_resident_memory_bytes,container_memory_working_set_bytes,nodejs_heap_size_used_bytes",
    ),
    ParamSpec::int(
        "memory_limit_bytes",
        "Memory limit (bytes)",
        "The limit to project the growth against; 0 reads container_spec_memory_limit_bytes when exported.",
        0,
        1 << 50,
        "0",
    ),
    ParamSpec::int(
        "leak_growth_pct_per_h",
        "Leak growth (%/h)",
        "A steady climb of at least this share of the current value per hour is a leak sign.",
        1,
        100_000,
        "5",
    ),
    ParamSpec::int(
        "leak_fit_pct",
        "Leak fit (R², %)",
        "…and the climb must fit a straight line at least this well.",
        1,
        100,
        "80",
    ),
    ParamSpec::int(
        "leak_critical_h",
        "Leak critical within (h)",
        "A leak that reaches the memory limit within this many hours is critical.",
        1,
        720,
        "6",
    ),
    ParamSpec::text(
        "latency_histograms",
        "Server duration histograms",
        "The first of these histograms the service exports gives its request rate, errors and latency (OpenTelemetry and common Prometheus client names).",
        500,
        "http_server_request_duration_seconds,http_request_duration_seconds,http_server_duration_milliseconds,grpc_server_handling_seconds,rpc_server_duration_milliseconds",
    ),
    ParamSpec::text(
        "status_labels",
        "Status labels",
        "The label that carries the response status (the first one present on a series).",
        300,
        "http_response_status_code,status_code,code,status,grpc_code,rpc_grpc_status_code",
    ),
    ParamSpec::int(
        "error_ratio_pct",
        "Error ratio (%)",
        "A 5xx share at or over this is flagged (critical at four times it).",
        1,
        100,
        "5",
    ),
    ParamSpec::int(
        "p99_ms",
        "p99 latency (ms)",
        "A p99 at or over this is flagged (critical at four times it).",
        1,
        3_600_000,
        "1000",
    ),
    ParamSpec::text(
        "breaker_counter",
        "opossum counter",
        "The counter opossum-prometheus exports (labels name and event); a metric prefix changes it.",
        200,
        "circuit",
    ),
    ParamSpec::int(
        "flap_opens",
        "Flapping (opens)",
        "A closed breaker that opened this many times in the window is flapping.",
        1,
        10_000,
        "3",
    ),
    ParamSpec::int(
        "event_loop_lag_ms",
        "Event-loop lag (ms)",
        "Node.js event-loop lag at or over this is flagged.",
        1,
        600_000,
        "100",
    ),
    ParamSpec::int(
        "throttle_pct",
        "CPU throttling (%)",
        "A share of throttled CPU periods at or over this is flagged.",
        1,
        100,
        "25",
    ),
    ParamSpec::int(
        "pool_pct",
        "Pool use (%)",
        "Connection pools at or over this share of their size are flagged.",
        1,
        100,
        "90",
    ),
];

const CODES: &[CodeDoc] = &[
    CodeDoc {
        code: "PROM_SUMMARY",
        severity: Severity::Info,
        meaning: "What the service exports, the queries the probe issued, memory per instance, request rate, error ratio and p50/p99 now, a day and a week earlier.",
        remediation: "None; context for the other findings.",
    },
    CodeDoc {
        code: "PROM_NO_SERIES",
        severity: Severity::Warning,
        meaning: "The selector matches no series, or none of the metrics a section reads: that section could not judge.",
        remediation: "Check the selector's label names and values against the service's series (`count by (__name__) ({selector})` in the Prometheus UI), or name the metrics the service exports in the probe's parameters.",
    },
    CodeDoc {
        code: "PROM_MEMORY_GROWTH",
        severity: Severity::Critical,
        meaning: "An instance's memory climbs steadily (linear fit shown with R²), or climbed in every run between restarts; critical when it reaches the memory limit within the configured hours at the current slope.",
        remediation: "Take two heap snapshots some minutes apart and compare what grew (`node --inspect` / `kill -USR2` with heapdump, `jcmd <pid> GC.heap_dump`); look at caches and listeners without bounds. Until fixed, restart before the projected time, or raise the limit.",
    },
    CodeDoc {
        code: "PROM_ERROR_RATE",
        severity: Severity::Critical,
        meaning: "The service's share of server errors (5xx, or gRPC server codes) is over the threshold, or rose to twice the same window a day or a week earlier.",
        remediation: "Break the errors down by route and status (`sum by (route, status) (rate(…_count{…}[5m]))`), read the logs of the failing route, and check what changed (deploys, dependencies, the circuit breakers below).",
    },
    CodeDoc {
        code: "PROM_LATENCY",
        severity: Severity::Critical,
        meaning: "The service's p99 (from its duration histogram, `histogram_quantile`) is over the threshold, or twice the same window a day or a week earlier.",
        remediation: "Find the slow route (`histogram_quantile(0.99, sum by (le, route) (rate(…_bucket[5m])))`), then a slow trace of it (the trace breakdown probe); check saturation below.",
    },
    CodeDoc {
        code: "PROM_BREAKER_OPEN",
        severity: Severity::Critical,
        meaning: "A circuit breaker is open (critical), half-open, flapping, or opened with its state not exported (warnings): calls to its dependency are rejected or falling back.",
        remediation: "Check the dependency the breaker wraps (its health, its error rate, its latency against the breaker's timeout); the breaker closes by itself once trial calls succeed. Confirm the fallback is acceptable meanwhile.",
    },
    CodeDoc {
        code: "PROM_RETRIES",
        severity: Severity::Warning,
        meaning: "Calls needed retries or failed after them (resilience4j retry metrics): a dependency is failing intermittently and retries multiply its load.",
        remediation: "Check the dependency named; make sure retries back off with jitter and are bounded, and that the operation is idempotent.",
    },
    CodeDoc {
        code: "PROM_EVENT_LOOP_LAG",
        severity: Severity::Critical,
        meaning: "The Node.js event loop lagged over the threshold: every request on that instance waited.",
        remediation: "Find the synchronous work blocking the loop (a CPU profile: `node --cpu-prof`, or clinic flame); move it to a worker thread or split it.",
    },
    CodeDoc {
        code: "PROM_CPU_THROTTLED",
        severity: Severity::Critical,
        meaning: "A large share of the containers' CPU periods were throttled by their CPU limit.",
        remediation: "Raise or remove the CPU limit (keep the request), or reduce the work; throttling adds latency even at low average CPU.",
    },
    CodeDoc {
        code: "PROM_POOL_SATURATED",
        severity: Severity::Critical,
        meaning: "A connection pool is (nearly) fully in use, or callers wait for a connection.",
        remediation: "Look for slow queries or leaked connections holding the pool (the PostgreSQL probe's long queries); raise the pool size only if the database has room.",
    },
];

pub static SPEC: ProbeSpec = ProbeSpec {
    name: "prometheus",
    kind: "prometheus",
    title: "Service metrics (memory, errors, latency, breakers)",
    description: "Reads one service's metrics from Prometheus over a window: memory growth per instance by linear regression (restarts split it; time to the limit), 5xx ratio and p50/p99 compared with a day and a week earlier, circuit breakers (opossum, resilience4j) and retries, event-loop lag, CPU throttling and connection pools. Each finding carries its PromQL, its numbers and a chart.",
    params: PARAMS,
    steps: STEPS,
    codes: CODES,
    run_timeout_s: 120,
    check: Some(check_params),
};

fn check_params(p: &Params) -> Result<(), String> {
    rules::selector(p.text("selector")).map_err(|e| format!("parameter selector: {e}"))?;
    let w = rules::duration(p.text("window")).map_err(|e| format!("parameter window: {e}"))?;
    if !(30..=7 * 86_400).contains(&w) {
        return Err("parameter window must be between 30s and 7d".into());
    }
    for name in ["memory_metrics", "latency_histograms", "breaker_counter"] {
        rules::metric_names(p.text(name)).map_err(|e| format!("parameter {name}: {e}"))?;
    }
    rules::label_names(p.text("status_labels"))
        .map_err(|e| format!("parameter status_labels: {e}"))?;
    Ok(())
}

impl Probe for PrometheusProbe {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        conn: &'a Connection,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(run(ctx, conn, params))
    }
}

/// The probe's view of Prometheus: every query counted, paced and bounded by the step limit.
struct Prom<'a> {
    ctx: &'a Ctx,
    client: Client,
    /// The window's end and length (seconds).
    end: f64,
    window: f64,
    /// Range queries issued (each section asks a fixed number).
    ranges: std::sync::atomic::AtomicU64,
}

impl Prom<'_> {
    async fn instant(&self, q: &str) -> Result<QueryValue, ProbeError> {
        self.ctx.pace(1).await?;
        let limit = self.ctx.step_timeout();
        self.ctx
            .net(&self.client.target, self.client.query(q, limit), |e| e)
            .await
    }
    /// The vector an instant query returned (a scalar becomes one unlabelled sample).
    async fn vector(&self, q: &str) -> Result<Vec<super::Sample>, ProbeError> {
        Ok(match self.instant(q).await? {
            QueryValue::Vector(v) => v,
            QueryValue::Scalar(x) => vec![super::Sample {
                labels: BTreeMap::new(),
                value: x,
            }],
        })
    }
    async fn one(&self, q: &str) -> Result<Option<f64>, ProbeError> {
        Ok(self
            .vector(q)
            .await?
            .first()
            .map(|s| s.value)
            .filter(|v| v.is_finite()))
    }
    /// A range query over the window, at most ~200 points per series.
    async fn range(&self, q: &str) -> Result<Vec<RangeSeries>, ProbeError> {
        self.ctx.pace(1).await?;
        self.ranges
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let limit = self.ctx.step_timeout();
        let step = self.step();
        self.ctx
            .net(
                &self.client.target,
                self.client
                    .query_range(q, self.end - self.window, self.end, step, limit),
                |e| e,
            )
            .await
    }
    fn step(&self) -> f64 {
        (self.window / 200.0).ceil().max(1.0)
    }
    /// The window of `rate()` inside range queries: long enough to hold several scrapes.
    fn rate_window(&self) -> String {
        let s = (self.step() * 2.0).max(self.window.min(300.0));
        format!("{}s", s.round() as u64)
    }
}

/// A series' name for people: its instance (and pod), or its labels.
fn who(labels: &BTreeMap<String, String>) -> String {
    let mut parts = vec![];
    for k in ["instance", "pod", "container"] {
        if let Some(v) = labels.get(k).filter(|v| !v.is_empty()) {
            parts.push(v.clone());
        }
    }
    // cAdvisor outside Kubernetes (Docker, raw cgroups): one instance, many containers,
    // told apart by their name or cgroup path.
    if !labels.contains_key("pod")
        && !labels.contains_key("container")
        && let Some(v) = ["name", "id"]
            .iter()
            .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
    {
        parts.push(v.clone());
    }
    if parts.is_empty() {
        let rest: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if rest.is_empty() {
            return "(all)".into();
        }
        return rest.join(",");
    }
    parts.join(" ")
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "no data".into())
}

/// A section whose query Prometheus refused: a finding that says which query and why, and
/// the run goes on with the other sections. Unreachable or timed out ends the run.
fn section_error(ctx: &Ctx, section: &str, e: ProbeError) -> Result<(), ProbeError> {
    match e {
        ProbeError::Server { target, reason } => {
            ctx.finding(
                Finding::new(
                    "TARGET_ERROR",
                    Severity::Warning,
                    format!("{section}: Prometheus refused a query: {reason}"),
                )
                .fact("target", target)
                .remediation("Read the error: the selector or a metric name may not fit this Prometheus (fix the probe's parameters), or the query was too large for its limits."),
            );
            Ok(())
        }
        other => Err(other),
    }
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    let sel = rules::selector(params.text("selector")).map_err(ProbeError::InvalidTarget)?;
    let window = rules::duration(params.text("window")).map_err(ProbeError::InvalidTarget)? as f64;
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    ctx.phase("Connect");
    let client = Client::new(&conn.url)?;
    let p = Prom {
        ctx,
        client,
        end: end.floor(),
        window,
        ranges: Default::default(),
    };
    ctx.pace(1).await?;
    let version = ctx
        .net(
            &p.client.target,
            p.client.build_info(ctx.step_timeout()),
            |e| e,
        )
        .await?;

    ctx.phase("Find the service's metrics");
    let names: BTreeSet<String> = p
        .vector(&format!("count by (__name__) ({{{sel}}})"))
        .await?
        .into_iter()
        .filter_map(|s| s.labels.get("__name__").cloned())
        .collect();
    ctx.detail(format!("{} metric names", names.len()));
    let w = params.text("window").trim().to_string();
    let mut summary = Finding::new(
        "PROM_SUMMARY",
        Severity::Info,
        format!(
            "{{{sel}}} over the last {w}: {} metric names on Prometheus {version}",
            names.len()
        ),
    )
    .fact("selector", format!("{{{sel}}}"))
    .fact("window", &w)
    .fact("Prometheus", &version);
    if names.is_empty() {
        ctx.finding(
            Finding::new(
                "PROM_NO_SERIES",
                Severity::Warning,
                format!("No series match {{{sel}}}: nothing to judge"),
            )
            .fact("selector", format!("{{{sel}}}"))
            .command(format!("count by (__name__) ({{{sel}}})"))
            .remediation(
                "Check the label names and values against the service's series in the Prometheus UI (`up`, then its labels); the job label is the scrape job's name.",
            ),
        );
        ctx.finding(summary.fact("queries", ctx.commands()));
        return Ok(());
    }
    let mut missing: Vec<&str> = vec![];

    ctx.phase("Memory");
    if let Err(e) = memory(&p, params, &sel, &names, &mut summary, &mut missing).await {
        section_error(ctx, "Memory", e)?;
    }
    ctx.phase("Errors and latency");
    if let Err(e) = red(&p, params, &sel, &names, &mut summary, &mut missing).await {
        section_error(ctx, "Errors and latency", e)?;
    }
    ctx.phase("Circuit breakers and retries");
    if let Err(e) = breakers(&p, params, &sel, &names, &mut summary).await {
        section_error(ctx, "Circuit breakers", e)?;
    }
    ctx.phase("Saturation");
    if let Err(e) = saturation(&p, params, &sel, &names, &mut summary).await {
        section_error(ctx, "Saturation", e)?;
    }
    if !missing.is_empty() {
        ctx.finding(
            Finding::new(
                "PROM_NO_SERIES",
                Severity::Warning,
                format!(
                    "{{{sel}}} exports none of the metrics for: {}",
                    missing.join(", ")
                ),
            )
            .fact("memory metrics looked for", params.text("memory_metrics"))
            .fact("histograms looked for", params.text("latency_histograms"))
            .command(format!("count by (__name__) ({{{sel}}})"))
            .remediation(
                "Name the metrics the service does export in the probe's parameters (memory_metrics, latency_histograms), or instrument it (prom-client's default metrics, an HTTP duration histogram).",
            ),
        );
    }
    let queries = ctx.commands();
    summary.title = format!("{} · {queries} queries", summary.title);
    let ranges = p.ranges.load(std::sync::atomic::Ordering::Relaxed);
    ctx.finding(
        summary
            .fact("queries", queries)
            .fact("range queries", ranges),
    );
    Ok(())
}

async fn memory(
    p: &Prom<'_>,
    params: &Params,
    sel: &str,
    names: &BTreeSet<String>,
    summary: &mut Finding,
    missing: &mut Vec<&str>,
) -> Result<(), ProbeError> {
    let metrics = rules::metric_names(params.text("memory_metrics")).unwrap_or_default();
    let Some(metric) = metrics.iter().find(|m| names.contains(*m)) else {
        missing.push("memory");
        return Ok(());
    };
    let q = format!("{metric}{{{sel}}}");
    let series = p.range(&q).await?;
    // The limit: a parameter, or the container's own when exported.
    let fixed = params.int("memory_limit_bytes");
    let mut limit_query = None;
    let limits: Vec<super::Sample> = if fixed > 0 {
        vec![]
    } else if names.contains("container_spec_memory_limit_bytes") {
        let lq = format!("container_spec_memory_limit_bytes{{{sel}}} > 0");
        let v = p.vector(&lq).await?;
        limit_query = Some(lq);
        v
    } else {
        vec![]
    };
    let limit_for = |labels: &BTreeMap<String, String>| -> Option<f64> {
        if fixed > 0 {
            return Some(fixed as f64);
        }
        let same = |l: &BTreeMap<String, String>, k: &str| labels.get(k) == l.get(k);
        limits
            .iter()
            .find(|l| {
                ["pod", "container", "instance", "id", "name"]
                    .iter()
                    .all(|k| same(&l.labels, k))
            })
            .or_else(|| {
                limits
                    .iter()
                    .find(|l| same(&l.labels, "pod") && labels.contains_key("pod"))
            })
            .or(if limits.len() == 1 {
                limits.first()
            } else {
                None
            })
            .map(|l| l.value)
    };
    let lim = MemoryLimits {
        min_r2: params.int("leak_fit_pct") as f64 / 100.0,
        min_growth_per_h: params.int("leak_growth_pct_per_h") as f64 / 100.0,
        critical_within_s: params.int("leak_critical_h") as f64 * 3600.0,
    };
    // A gap of more than 10 steps (a scrape outage, a rescheduled pod) splits a stretch.
    let gap = p.step() * 10.0;
    let mut table = Table::new(
        &format!("{metric} per instance"),
        &[
            "instance",
            "now",
            "slope",
            "R²",
            "restarts seen",
            "limit",
            "time to limit",
            "verdict",
        ],
    );
    let mut all = Chart::new(metric.to_string(), "bytes");
    for s in series.iter().take(50) {
        let name = who(&s.labels);
        let limit = limit_for(&s.labels);
        let v = rules::memory(&s.points, limit, &lim, gap);
        let slope = v.fit.map(|f| f.slope).unwrap_or(0.0);
        table.row(vec![
            name.clone(),
            crate::framework::bytes(v.current.max(0.0) as u64),
            format!("{}/h", signed_bytes(slope * 3600.0)),
            v.fit
                .map(|f| format!("{:.2}", f.r2))
                .unwrap_or_else(|| "—".into()),
            v.segments.saturating_sub(1).to_string(),
            limit
                .map(|l| crate::framework::bytes(l as u64))
                .unwrap_or_else(|| "unknown".into()),
            opt(v.time_to_limit_s, rules::span),
            v.reason.clone(),
        ]);
        all = all.series(name.clone(), &s.points);
        let Some(sev) = v.severity else { continue };
        // The growth still acceptable: the leak threshold of today's value, per hour.
        let growth_ok = (v.current * lim.min_growth_per_h).max(1.0);
        let mut f = Finding::new(
            "PROM_MEMORY_GROWTH",
            sev,
            format!(
                "{name}: {metric} {} at {}/h{}",
                v.reason,
                signed_bytes(slope * 3600.0),
                v.time_to_limit_s
                    .map(|t| format!(", reaches its limit in {}", rules::span(t)))
                    .unwrap_or_default()
            ),
        )
        .fact("instance", &name)
        .fact("now", crate::framework::bytes(v.current.max(0.0) as u64))
        .fact(
            "slope",
            format!("{}/h ({:.0} bytes/s)", signed_bytes(slope * 3600.0), slope),
        )
        .fact(
            "fit (R²)",
            v.fit.map(|f| format!("{:.3}", f.r2)).unwrap_or_default(),
        )
        .fact("points", v.fit.map(|f| f.n).unwrap_or(0))
        .fact("runs between restarts", v.segments)
        .fact("climbing runs", v.climbing);
        if let Some(l) = limit {
            f = f.fact("memory limit", crate::framework::bytes(l as u64));
        }
        if let Some(t) = v.time_to_limit_s {
            f = f.fact("time to limit", rules::span(t));
        }
        let mut cmd = format!(
            "{q}\n(range over {}, step {}s)",
            params.text("window"),
            p.step()
        );
        if let Some(lq) = &limit_query {
            cmd.push_str(&format!("\n{lq}"));
        }
        p.ctx.finding(
            f.command(cmd)
                .chart(
                    Chart::new(format!("{metric} — {name}"), "bytes")
                        .series(name.clone(), &s.points),
                )
                .remediation(with_item(
                    "PROM_MEMORY_GROWTH",
                    &format!("memory-growth-{}", sel_id(sel)),
                    &format!(
                        "{metric} of {{{sel}}} not climbing faster than {}/h",
                        crate::framework::bytes(growth_ok as u64)
                    ),
                    &format!("max(deriv({metric}{{{sel}}}[30m])) * 3600"),
                    &format!("result < {}", growth_ok.round()),
                )),
        );
    }
    if series.len() > 50 {
        table.row(vec![format!(
            "… {} more instances not analysed",
            series.len() - 50
        )]);
    }
    summary.tables.push(table);
    summary.charts.push(all);
    Ok(())
}

/// The remediation of `code`, followed by the same condition as a deployment-checklist
/// metric item (a fenced block: the finding page's "Add to checklist" puts it in a template
/// in one click, see `domain::deployments::add_item`), so the next deploy of the service is
/// gated on it.
fn with_item(code: &str, id: &str, text: &str, query: &str, success: &str) -> String {
    // YAML single quotes: PromQL's double quotes stay as they are, a quote is doubled.
    let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let id: String = id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let id: String = id.chars().take(63).collect();
    format!(
        "{}\n\nTo check this before and after every deploy, add it to a deployment checklist template (\"Add to checklist\" under it does that in one click; the item takes the template's Prometheus binding):\n\n```yaml\n- id: {}\n  kind: metric\n  text: {}\n  target: prometheus\n  query: {}\n  success: {success}\n```",
        crate::framework::remediation(CODES, code),
        id.trim_end_matches('-'),
        q(text),
        q(query),
    )
}

/// `q`'s instant values keyed by their `name` label (a breaker's), or nothing without a
/// query when the service does not export `metric`.
async fn by_name(
    p: &Prom<'_>,
    names: &BTreeSet<String>,
    metric: &str,
    q: &str,
) -> Result<BTreeMap<String, f64>, ProbeError> {
    if !names.contains(metric) {
        return Ok(BTreeMap::new());
    }
    Ok(p.vector(q)
        .await?
        .into_iter()
        .map(|s| (s.labels.get("name").cloned().unwrap_or_default(), s.value))
        .collect())
}

/// A label value inside PromQL double quotes.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A selector's values as an id part: `job="checkout"` → `checkout`.
fn sel_id(sel: &str) -> String {
    sel.split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .join("-")
}

fn signed_bytes(v: f64) -> String {
    let b = crate::framework::bytes(v.abs() as u64);
    if v < 0.0 {
        format!("-{b}")
    } else {
        format!("+{b}")
    }
}

/// The status class of a series of the duration histogram's `_count`.
fn status_of<'a>(
    labels: &'a BTreeMap<String, String>,
    status_labels: &'a [String],
) -> Option<(&'a str, &'a str)> {
    status_labels.iter().find_map(|l| {
        labels
            .get(l)
            .filter(|v| !v.is_empty())
            .map(|v| (l.as_str(), v.as_str()))
    })
}

/// (error ratio, requests per second, the status label seen) of one `sum by (statuses)` answer.
fn ratio_of(
    samples: &[super::Sample],
    status_labels: &[String],
) -> (Option<f64>, f64, Option<String>) {
    let mut total = 0.0;
    let mut errors = 0.0;
    let mut seen = None;
    for s in samples {
        if !s.value.is_finite() {
            continue;
        }
        total += s.value;
        if let Some((label, value)) = status_of(&s.labels, status_labels) {
            seen.get_or_insert_with(|| label.to_string());
            if rules::is_server_error(label, value) {
                errors += s.value;
            }
        }
    }
    let ratio = (total > 0.0).then(|| errors / total);
    (ratio, total, seen)
}

/// The PromQL regex of server-error statuses for a status label.
fn error_regex(label: &str) -> &'static str {
    if label.contains("grpc") || label.starts_with("rpc_") {
        "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss|UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|2|4|12|13|14|15"
    } else {
        "5..|5xx"
    }
}

async fn red(
    p: &Prom<'_>,
    params: &Params,
    sel: &str,
    names: &BTreeSet<String>,
    summary: &mut Finding,
    missing: &mut Vec<&str>,
) -> Result<(), ProbeError> {
    let hists = rules::metric_names(params.text("latency_histograms")).unwrap_or_default();
    let Some(h) = hists
        .iter()
        .find(|h| names.contains(&format!("{h}_bucket")) && names.contains(&format!("{h}_count")))
    else {
        missing.push("errors and latency");
        return Ok(());
    };
    let scale = if h.ends_with("_milliseconds") || h.ends_with("_ms") {
        0.001
    } else {
        1.0
    };
    let status_labels = rules::label_names(params.text("status_labels")).unwrap_or_default();
    let w = params.text("window").trim().to_string();
    let by = status_labels.join(", ");
    let count_q = |offset: &str| format!("sum by ({by}) (rate({h}_count{{{sel}}}[{w}]{offset}))");
    let q_now = count_q("");
    let now = p.vector(&q_now).await?;
    let day = p.vector(&count_q(" offset 1d")).await?;
    let week = p.vector(&count_q(" offset 1w")).await?;
    let (r_now, rps, label) = ratio_of(&now, &status_labels);
    let errors = Compared {
        now: r_now,
        day: ratio_of(&day, &status_labels).0,
        week: ratio_of(&week, &status_labels).0,
    };
    let quantile = |q: f64, offset: &str| {
        format!("histogram_quantile({q}, sum by (le) (rate({h}_bucket{{{sel}}}[{w}]{offset})))")
    };
    let mut lat = BTreeMap::new();
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        let c = Compared {
            now: p.one(&quantile(q, "")).await?.map(|v| v * scale),
            day: p.one(&quantile(q, " offset 1d")).await?.map(|v| v * scale),
            week: p.one(&quantile(q, " offset 1w")).await?.map(|v| v * scale),
        };
        lat.insert(label, c);
    }
    let p50 = lat.get("p50").copied().unwrap_or_default();
    let p99 = lat.get("p99").copied().unwrap_or_default();
    let mut table = Table::new(
        &format!("{h}: the last {w} against a day and a week earlier"),
        &["measure", "now", "a day earlier", "a week earlier"],
    );
    table.row(vec!["requests/s".into(), num(rps), "".into(), "".into()]);
    let row = |name: &str, c: &Compared, f: fn(f64) -> String| {
        vec![
            name.to_string(),
            opt(c.now, f),
            opt(c.day, f),
            opt(c.week, f),
        ]
    };
    table.row(row("5xx ratio", &errors, rules::pct));
    table.row(row("p50", &p50, rules::ms));
    table.row(row("p99", &p99, rules::ms));
    summary.tables.push(table.clone());
    let lim = RedLimits {
        error_ratio: params.int("error_ratio_pct") as f64 / 100.0,
        p99_s: params.int("p99_ms") as f64 / 1000.0,
    };
    let rw = p.rate_window();
    if let Some((sev, why)) = rules::error_verdict(&errors, &lim) {
        let label = label.unwrap_or_else(|| "code".into());
        let rq = format!(
            "sum(rate({h}_count{{{sel},{label}=~\"{}\"}}[{rw}])) / sum(rate({h}_count{{{sel}}}[{rw}]))",
            error_regex(&label)
        );
        let series = p.range(&rq).await?;
        let mut chart = Chart::new("5xx ratio", "ratio");
        for s in &series {
            chart = chart.series("5xx ratio", &s.points);
        }
        let mut by_status = Table::new("requests/s by status", &["status", "requests/s"]);
        for s in &now {
            if let Some((_, v)) = status_of(&s.labels, &status_labels) {
                by_status.row(vec![v.to_string(), num(s.value)]);
            }
        }
        p.ctx.finding(
            Finding::new("PROM_ERROR_RATE", sev, format!("{{{sel}}}: {why}"))
                .fact("error ratio", opt(errors.now, rules::pct))
                .fact("a day earlier", opt(errors.day, rules::pct))
                .fact("a week earlier", opt(errors.week, rules::pct))
                .fact("requests/s", num(rps))
                .fact("threshold", rules::pct(lim.error_ratio))
                .command(format!("{q_now}\n(and with offset 1d, offset 1w)\n{rq}"))
                .table(by_status)
                .table(table.clone())
                .chart(chart)
                .remediation(with_item(
                    "PROM_ERROR_RATE",
                    &format!("error-ratio-{}", sel_id(sel)),
                    &format!("5xx ratio of {{{sel}}} below {}", rules::pct(lim.error_ratio)),
                    &format!(
                        "sum(rate({h}_count{{{sel},{label}=~\"{}\"}}[5m])) / sum(rate({h}_count{{{sel}}}[5m]))",
                        error_regex(&label)
                    ),
                    &format!("result < {}", lim.error_ratio),
                )),
        );
    }
    if let Some((sev, why)) = rules::latency_verdict(&p99, &lim) {
        let mut chart = Chart::new("latency", "seconds");
        let mut cmd = quantile(0.99, "");
        cmd.push_str("\n(and p50; with offset 1d, offset 1w)");
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            let rq =
                format!("histogram_quantile({q}, sum by (le) (rate({h}_bucket{{{sel}}}[{rw}])))");
            let series = p.range(&rq).await?;
            for s in &series {
                let pts: Vec<(f64, f64)> = s.points.iter().map(|(t, v)| (*t, v * scale)).collect();
                chart = chart.series(name, &pts);
            }
            cmd.push_str(&format!("\n{rq}"));
        }
        p.ctx.finding(
            Finding::new("PROM_LATENCY", sev, format!("{{{sel}}}: {why}"))
                .fact("p99", opt(p99.now, rules::ms))
                .fact("p50", opt(p50.now, rules::ms))
                .fact("p99 a day earlier", opt(p99.day, rules::ms))
                .fact("p99 a week earlier", opt(p99.week, rules::ms))
                .fact("threshold", rules::ms(lim.p99_s))
                .command(cmd)
                .table(table)
                .chart(chart)
                .remediation(with_item(
                    "PROM_LATENCY",
                    &format!("p99-{}", sel_id(sel)),
                    &format!("p99 of {{{sel}}} below {}", rules::ms(lim.p99_s)),
                    &format!(
                        "histogram_quantile(0.99, sum by (le) (rate({h}_bucket{{{sel}}}[5m]))){}",
                        if scale == 1.0 { "" } else { " / 1000" }
                    ),
                    &format!("result < {}", lim.p99_s),
                )),
        );
    }
    Ok(())
}

async fn breakers(
    p: &Prom<'_>,
    params: &Params,
    sel: &str,
    names: &BTreeSet<String>,
    summary: &mut Finding,
) -> Result<(), ProbeError> {
    let flap = params.int("flap_opens") as f64;
    let counter = params.text("breaker_counter").trim().to_string();
    let mut table = Table::new(
        "circuit breakers",
        &[
            "breaker",
            "library",
            "state",
            "opens in window",
            "failures",
            "rejected",
            "fallbacks",
        ],
    );
    if !counter.is_empty() && names.contains(&counter) {
        // opossum-prometheus: one counter, labels name and event, counting since start.
        let q = format!("sum by (name, event) ({counter}{{{sel}}})");
        let series = p.range(&q).await?;
        let mut by: BTreeMap<String, BTreeMap<String, &RangeSeries>> = BTreeMap::new();
        for s in &series {
            let name = s.labels.get("name").cloned().unwrap_or_default();
            let event = s.labels.get("event").cloned().unwrap_or_default();
            by.entry(name).or_default().insert(event, s);
        }
        for (name, events) in by.iter().take(100) {
            let last = |e: &str| events.get(e).and_then(|s| s.points.last()).map(|p| p.1);
            let inc = |e: &str| -> f64 {
                events
                    .get(e)
                    .map(|s| rules::increases(&s.points).iter().map(|x| x.1).sum())
                    .unwrap_or(0.0)
            };
            // What it did lately: the last 3 steps, at least 30 s.
            let recent_from = p.end - (p.step() * 3.0).max(30.0);
            let recent = |e: &str| -> f64 {
                events
                    .get(e)
                    .map(|s| {
                        rules::increases(&s.points)
                            .iter()
                            .filter(|x| x.0 > recent_from)
                            .map(|x| x.1)
                            .sum()
                    })
                    .unwrap_or(0.0)
            };
            let state = rules::opossum_state(
                last("open").unwrap_or(0.0),
                last("halfOpen"),
                last("close"),
                recent("reject"),
                recent("success"),
            );
            let (fires, failures, rejects, fallbacks, timeouts) = (
                inc("fire"),
                inc("failure"),
                inc("reject"),
                inc("fallback"),
                inc("timeout"),
            );
            let opens = inc("open");
            table.row(vec![
                name.clone(),
                "opossum".into(),
                state.as_str().into(),
                num(opens),
                num(failures),
                num(rejects),
                num(fallbacks),
            ]);
            let Some((sev, why)) = rules::breaker_verdict(state, opens, flap) else {
                continue;
            };
            let since = events
                .get("open")
                .and_then(|s| rules::last_increase(&s.points));
            let mut chart = Chart::new(format!("breaker {name}: events per step"), "events");
            for e in ["failure", "reject", "success", "open"] {
                if let Some(s) = events.get(e) {
                    chart = chart.series(e, &rules::increases(&s.points));
                }
            }
            let attempted = fires - rejects;
            let mut f = Finding::new(
                "PROM_BREAKER_OPEN",
                sev,
                format!("Circuit breaker {name} {why}"),
            )
            .fact("breaker", name)
            .fact("library", "opossum")
            .fact("state", state.as_str())
            .fact("opens in the window", num(opens))
            .fact("calls in the window", num(fires))
            .fact("failures", num(failures))
            .fact("timeouts", num(timeouts))
            .fact("rejected (short-circuited)", num(rejects))
            .fact("fallbacks", num(fallbacks));
            if attempted > 0.0 {
                f = f.fact(
                    "failure rate of attempted calls",
                    rules::pct(failures / attempted),
                );
            }
            f = match since {
                Some(t) => f
                    .fact("last opened", format!("{} ago", rules::span(p.end - t)))
                    .fact("last opened at (unix s)", t.round() as i64),
                None => f.fact(
                    "last opened",
                    format!("before the window ({})", params.text("window").trim()),
                ),
            };
            p.ctx.finding(
                f.command(format!(
                    "{q}\n(range over {}, step {}s)",
                    params.text("window"),
                    p.step()
                ))
                .chart(chart)
                .remediation(with_item(
                    "PROM_BREAKER_OPEN",
                    &format!("breaker-{name}-closed"),
                    &format!("Circuit breaker {name} of {{{sel}}} rejects no calls"),
                    &format!(
                        "sum(increase({counter}{{{sel},name=\"{}\",event=\"reject\"}}[5m])) or vector(0)",
                        esc(name)
                    ),
                    "result == 0",
                )),
            );
        }
    }
    if names.contains("resilience4j_circuitbreaker_state") {
        let q = format!("max by (name, state) (resilience4j_circuitbreaker_state{{{sel}}})");
        let series = p.range(&q).await?;
        let rate_q = format!("max by (name) (resilience4j_circuitbreaker_failure_rate{{{sel}}})");
        let rates = by_name(
            p,
            names,
            "resilience4j_circuitbreaker_failure_rate",
            &rate_q,
        )
        .await?;
        // Calls the open breaker turned away in the window.
        let w = params.text("window").trim();
        let rejected_q = format!(
            "sum by (name) (increase(resilience4j_circuitbreaker_not_permitted_calls_total{{{sel}}}[{w}]))"
        );
        let rejected = by_name(
            p,
            names,
            "resilience4j_circuitbreaker_not_permitted_calls_total",
            &rejected_q,
        )
        .await?;
        let mut state_of: BTreeMap<String, (String, Option<f64>, &RangeSeries)> = BTreeMap::new();
        for s in &series {
            let Some(&(t, v)) = s.points.last() else {
                continue;
            };
            if v < 1.0 || t < p.end - p.step() * 3.0 {
                continue;
            }
            let name = s.labels.get("name").cloned().unwrap_or_default();
            let state = s.labels.get("state").cloned().unwrap_or_default();
            // Since when: the start of the trailing run of 1s.
            let since = s
                .points
                .iter()
                .rev()
                .take_while(|p| p.1 >= 1.0)
                .last()
                .map(|p| p.0);
            state_of.insert(name, (state, since, s));
        }
        for (name, (state, since, s)) in state_of.iter().take(100) {
            let st = match state.as_str() {
                "open" | "forced_open" => rules::BreakerState::Open,
                "half_open" => rules::BreakerState::HalfOpen,
                _ => rules::BreakerState::Closed,
            };
            let rate = rates.get(name).copied().filter(|r| *r >= 0.0);
            let turned_away = rejected.get(name).copied().filter(|v| v.is_finite());
            table.row(vec![
                name.clone(),
                "resilience4j".into(),
                state.clone(),
                "".into(),
                rate.map(|r| format!("{r:.1} % of calls"))
                    .unwrap_or_default(),
                turned_away.map(num).unwrap_or_default(),
                "".into(),
            ]);
            let Some((sev, why)) = rules::breaker_verdict(st, 0.0, f64::INFINITY) else {
                continue;
            };
            let mut f = Finding::new(
                "PROM_BREAKER_OPEN",
                sev,
                format!("Circuit breaker {name} {why}"),
            )
            .fact("breaker", name)
            .fact("library", "resilience4j")
            .fact("state", state);
            if let Some(r) = rate {
                f = f.fact("failure rate", format!("{r:.1} %"));
            }
            if let Some(t) = since {
                f = f.fact("in this state for", rules::span(p.end - t));
            }
            if let Some(n) = turned_away {
                f = f.fact("calls rejected in the window", num(n));
            }
            p.ctx.finding(
                f.command(format!("{q}\n{rate_q}\n{rejected_q}"))
                    .chart(
                        Chart::new(format!("breaker {name}: {state}"), "1 = in state")
                            .series(state.clone(), &s.points),
                    )
                    .remediation(with_item(
                        "PROM_BREAKER_OPEN",
                        &format!("breaker-{name}-closed"),
                        &format!("Circuit breaker {name} of {{{sel}}} is closed"),
                        &format!(
                            "max(resilience4j_circuitbreaker_state{{{sel},name=\"{}\",state=~\"open|forced_open|half_open\"}}) or vector(0)",
                            esc(name)
                        ),
                        "result < 1",
                    )),
            );
        }
    }
    if names.contains("resilience4j_retry_calls_total") {
        let w = params.text("window").trim();
        let q =
            format!("sum by (name, kind) (increase(resilience4j_retry_calls_total{{{sel}}}[{w}]))");
        let mut by: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for s in p.vector(&q).await? {
            by.entry(s.labels.get("name").cloned().unwrap_or_default())
                .or_default()
                .insert(s.labels.get("kind").cloned().unwrap_or_default(), s.value);
        }
        for (name, kinds) in by.iter().take(100) {
            let get = |k: &str| kinds.get(k).copied().unwrap_or(0.0);
            let retried_ok = get("successful_with_retry");
            let failed = get("failed_with_retry");
            let total: f64 = kinds.values().sum();
            let share = if total > 0.0 {
                (retried_ok + failed) / total
            } else {
                0.0
            };
            if failed <= 0.0 && share < 0.1 {
                continue;
            }
            p.ctx.finding(
                Finding::new(
                    "PROM_RETRIES",
                    Severity::Warning,
                    format!(
                        "Retry {name}: {} of calls needed retries, {} failed after retrying",
                        rules::pct(share),
                        num(failed)
                    ),
                )
                .fact("calls", num(total))
                .fact("succeeded after retries", num(retried_ok))
                .fact("failed after retries", num(failed))
                .fact("failed without retry", num(get("failed_without_retry")))
                .command(q.clone())
                .remediation(crate::framework::remediation(CODES, "PROM_RETRIES")),
            );
        }
    }
    if !table.rows.is_empty() {
        summary.tables.push(table);
    }
    Ok(())
}

async fn saturation(
    p: &Prom<'_>,
    params: &Params,
    sel: &str,
    names: &BTreeSet<String>,
    summary: &mut Finding,
) -> Result<(), ProbeError> {
    let rw = p.rate_window();
    // Event-loop lag (prom-client's default metrics).
    if let Some(metric) = [
        "nodejs_eventloop_lag_p99_seconds",
        "nodejs_eventloop_lag_seconds",
    ]
    .into_iter()
    .find(|m| names.contains(*m))
    {
        let q = format!("max by (instance) ({metric}{{{sel}}})");
        let warn = params.int("event_loop_lag_ms") as f64 / 1000.0;
        for s in p.range(&q).await?.iter().take(50) {
            let peak = s.points.iter().map(|p| p.1).fold(f64::NAN, f64::max);
            summary.facts.push((
                format!("event-loop lag peak, {}", who(&s.labels)),
                rules::ms(peak),
            ));
            if let Some(sev) = rules::saturation(peak, warn) {
                let name = who(&s.labels);
                let over = s.points.iter().filter(|p| p.1 >= warn).count();
                p.ctx.finding(
                    Finding::new(
                        "PROM_EVENT_LOOP_LAG",
                        sev,
                        format!("{name}: the event loop lagged up to {}", rules::ms(peak)),
                    )
                    .fact("instance", &name)
                    .fact("peak", rules::ms(peak))
                    .fact("threshold", rules::ms(warn))
                    .fact(
                        "samples over the threshold",
                        format!("{over} of {}", s.points.len()),
                    )
                    .command(format!(
                        "{q}\n(range over {}, step {}s)",
                        params.text("window"),
                        p.step()
                    ))
                    .chart(
                        Chart::new(format!("{metric} — {name}"), "seconds")
                            .series(&name, &s.points),
                    )
                    .remediation(with_item(
                        "PROM_EVENT_LOOP_LAG",
                        &format!("event-loop-lag-{}", sel_id(sel)),
                        &format!("Event-loop lag of {{{sel}}} below {}", rules::ms(warn)),
                        &format!("max(max_over_time({metric}{{{sel}}}[5m]))"),
                        &format!("result < {warn}"),
                    )),
                );
            }
        }
    }
    // CPU throttling (cAdvisor).
    if names.contains("container_cpu_cfs_throttled_periods_total")
        && names.contains("container_cpu_cfs_periods_total")
    {
        let q = format!(
            "rate(container_cpu_cfs_throttled_periods_total{{{sel}}}[{rw}]) / rate(container_cpu_cfs_periods_total{{{sel}}}[{rw}])"
        );
        let warn = params.int("throttle_pct") as f64 / 100.0;
        for s in p.range(&q).await?.iter().take(50) {
            let vals: Vec<f64> = s
                .points
                .iter()
                .map(|p| p.1)
                .filter(|v| v.is_finite())
                .collect();
            if vals.is_empty() {
                continue;
            }
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            if let Some(sev) = rules::saturation(mean, warn) {
                let name = who(&s.labels);
                p.ctx.finding(
                    Finding::new(
                        "PROM_CPU_THROTTLED",
                        sev,
                        format!("{name}: {} of CPU periods throttled", rules::pct(mean)),
                    )
                    .fact("container", &name)
                    .fact("throttled share (mean)", rules::pct(mean))
                    .fact("threshold", rules::pct(warn))
                    .command(q.clone())
                    .chart(
                        Chart::new(format!("throttled share — {name}"), "ratio")
                            .series(&name, &s.points),
                    )
                    .remediation(crate::framework::remediation(CODES, "PROM_CPU_THROTTLED")),
                );
            }
        }
    }
    // Connection pools (HikariCP through Micrometer).
    if names.contains("hikaricp_connections_active") && names.contains("hikaricp_connections_max") {
        let q = format!(
            "max by (pool) (hikaricp_connections_active{{{sel}}}) / max by (pool) (hikaricp_connections_max{{{sel}}})"
        );
        let pending_q = format!(
            "max by (pool) (max_over_time(hikaricp_connections_pending{{{sel}}}[{}]))",
            params.text("window").trim()
        );
        let pending: BTreeMap<String, f64> = if names.contains("hikaricp_connections_pending") {
            p.vector(&pending_q)
                .await?
                .into_iter()
                .map(|s| (s.labels.get("pool").cloned().unwrap_or_default(), s.value))
                .collect()
        } else {
            BTreeMap::new()
        };
        let warn = params.int("pool_pct") as f64 / 100.0;
        for s in p.range(&q).await?.iter().take(50) {
            let pool = s.labels.get("pool").cloned().unwrap_or_default();
            let peak = s.points.iter().map(|p| p.1).fold(f64::NAN, f64::max);
            let waiting = pending.get(&pool).copied().unwrap_or(0.0);
            let sev =
                rules::saturation(peak, warn).or((waiting > 0.0).then_some(Severity::Warning));
            if let Some(sev) = sev {
                p.ctx.finding(
                    Finding::new(
                        "PROM_POOL_SATURATED",
                        sev,
                        format!("Pool {pool}: up to {} of its connections in use, {} callers waiting at most", rules::pct(peak), num(waiting)),
                    )
                    .fact("pool", &pool)
                    .fact("peak use", rules::pct(peak))
                    .fact("most callers waiting", num(waiting))
                    .command(format!("{q}\n{pending_q}"))
                    .chart(Chart::new(format!("pool {pool} in use"), "ratio").series(&pool, &s.points))
                    .remediation(crate::framework::remediation(CODES, "PROM_POOL_SATURATED")),
                );
            }
        }
    }
    Ok(())
}
