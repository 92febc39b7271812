//! Prometheus metrics for `/metrics`: HTTP requests by route template and status, latency
//! histograms, the database pool, build info. A small registry of our own: a few counters
//! need no global recorder, and each app instance (tests run several) keeps its own.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    started: Option<Instant>,
    /// LLM usage records: stored, duplicates (retried exports), rejected spans.
    llm: Mutex<[u64; 3]>,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            started: Some(Instant::now()),
            ..Default::default()
        }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m
                .entry((method.to_string(), route.to_string()))
                .or_default();
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    pub fn llm_ingested(&self, stored: i64, duplicates: i64, rejected: i64) {
        if let Ok(mut m) = self.llm.lock() {
            m[0] += stored.max(0) as u64;
            m[1] += duplicates.max(0) as u64;
            m[2] += rejected.max(0) as u64;
        }
    }

    /// The text exposition format, with the pool's current state.
    pub fn render(&self, pool: &sqlx::PgPool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP lookout_build_info Build information.");
        let _ = writeln!(out, "# TYPE lookout_build_info gauge");
        let _ = writeln!(
            out,
            "lookout_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(started) = self.started {
            let _ = writeln!(
                out,
                "# HELP lookout_uptime_seconds Seconds since the process started."
            );
            let _ = writeln!(out, "# TYPE lookout_uptime_seconds gauge");
            let _ = writeln!(
                out,
                "lookout_uptime_seconds {:.3}",
                started.elapsed().as_secs_f64()
            );
        }
        let size = pool.size() as usize;
        let idle = pool.num_idle();
        let _ = writeln!(
            out,
            "# HELP lookout_db_pool_connections Database pool connections by state."
        );
        let _ = writeln!(out, "# TYPE lookout_db_pool_connections gauge");
        let _ = writeln!(
            out,
            "lookout_db_pool_connections{{state=\"in_use\"}} {}",
            size.saturating_sub(idle)
        );
        let _ = writeln!(out, "lookout_db_pool_connections{{state=\"idle\"}} {idle}");
        let _ = writeln!(
            out,
            "# HELP lookout_db_pool_max_connections Configured pool size."
        );
        let _ = writeln!(out, "# TYPE lookout_db_pool_max_connections gauge");
        let _ = writeln!(
            out,
            "lookout_db_pool_max_connections {}",
            pool.options().get_max_connections()
        );

        if let Ok(m) = self.llm.lock() {
            let _ = writeln!(
                out,
                "# HELP lookout_llm_spans_total GenAI spans received over OTLP: stored, duplicate (a retried export, not counted again) or rejected."
            );
            let _ = writeln!(out, "# TYPE lookout_llm_spans_total counter");
            for (i, outcome) in ["stored", "duplicate", "rejected"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "lookout_llm_spans_total{{outcome=\"{outcome}\"}} {}",
                    m[i]
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP lookout_http_requests_total HTTP requests by method, route template and status."
        );
        let _ = writeln!(out, "# TYPE lookout_http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "lookout_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP lookout_http_request_duration_seconds HTTP request latency by method and route template."
        );
        let _ = writeln!(
            out,
            "# TYPE lookout_http_request_duration_seconds histogram"
        );
        if let Ok(m) = self.latency.lock() {
            for ((method, route), h) in m.iter() {
                let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
                for (i, le) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "lookout_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "lookout_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "lookout_http_request_duration_seconds_sum{{{labels}}} {:.6}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "lookout_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        let workers = crate::workers::stats();
        let (hashes, refused) = domain::services::passwords::counters();
        let _ = writeln!(
            out,
            "# HELP lookout_password_hashes_total Password hashes and verifications run."
        );
        let _ = writeln!(out, "# TYPE lookout_password_hashes_total counter");
        let _ = writeln!(out, "lookout_password_hashes_total {hashes}");
        let _ = writeln!(
            out,
            "# HELP lookout_password_hash_refused_total Callers refused for want of a hashing slot (503)."
        );
        let _ = writeln!(out, "# TYPE lookout_password_hash_refused_total counter");
        let _ = writeln!(out, "lookout_password_hash_refused_total {refused}");
        let (measured, lag, in_flight) = crate::workers::check_stats();
        for (metric, kind, help, v) in [
            (
                "lookout_deployment_measurements_total",
                "counter",
                "Measurements of automated deployment items taken.",
                measured as f64,
            ),
            (
                "lookout_deployment_check_lag_seconds",
                "gauge",
                "How far behind its schedule the latest measurement batch was.",
                lag,
            ),
            (
                "lookout_deployment_checks_in_flight",
                "gauge",
                "Measurements being taken now.",
                in_flight as f64,
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}");
            let _ = writeln!(out, "# TYPE {metric} {kind}");
            let _ = writeln!(out, "{metric} {v}");
        }
        for (metric, kind, help) in [
            (
                "lookout_worker_runs_total",
                "counter",
                "Runs of each background worker.",
            ),
            (
                "lookout_worker_failures_total",
                "counter",
                "Failed runs of each background worker.",
            ),
            (
                "lookout_worker_restarts_total",
                "counter",
                "Times a background worker panicked and was restarted.",
            ),
            (
                "lookout_worker_last_run_seconds",
                "gauge",
                "Duration of each worker's last run.",
            ),
            (
                "lookout_worker_last_success_timestamp_seconds",
                "gauge",
                "Unix time of each worker's last successful run.",
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}");
            let _ = writeln!(out, "# TYPE {metric} {kind}");
            for (name, w) in &workers {
                let v = match metric {
                    "lookout_worker_runs_total" => w.runs as f64,
                    "lookout_worker_failures_total" => w.failures as f64,
                    "lookout_worker_restarts_total" => w.restarts as f64,
                    "lookout_worker_last_run_seconds" => w.last_duration_s,
                    _ => match w.last_success {
                        Some(t) => t,
                        None => continue,
                    },
                };
                let _ = writeln!(out, "{metric}{{worker=\"{name}\"}} {v}");
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The method label: the standard methods by name, anything else `other` (a client may send
/// any token as a method; each would otherwise become a new series).
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The route label: the matched template, a fixed name for static files, and `unmatched`
/// for everything else (so scanners cannot blow up the label set).
fn route_label(req: &Request) -> String {
    if let Some(m) = req.extensions().get::<MatchedPath>() {
        return m.as_str().to_string();
    }
    let path = req.uri().path();
    if path.starts_with("/pkg/") {
        "/pkg/*".into()
    } else if path.starts_with("/static/") {
        "/static/*".into()
    } else {
        "unmatched".into()
    }
}

/// The request-counting layer; it needs only the registry.
pub async fn track(
    axum::extract::State(metrics): axum::extract::State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = route_label(&req);
    let res = next.run(req).await;
    metrics.observe(
        method,
        &route,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_fixed_set() {
        use axum::http::Method;
        let cases = [
            ("GET", "GET"),
            ("POST", "POST"),
            ("DELETE", "DELETE"),
            ("PROPFIND", "other"),
            ("X-EVIL-{}\"", "other"),
            ("get", "other"),
        ];
        for (raw, want) in cases {
            let Ok(m) = Method::from_bytes(raw.as_bytes()) else {
                continue;
            };
            assert_eq!(method_label(&m), want, "{raw}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.observe("GET", "/x", 200, 0.003);
        m.observe("GET", "/x", 200, 0.2);
        m.observe("GET", "/x", 500, 20.0);
        let h = m.latency.lock().unwrap();
        let h = h.get(&("GET".into(), "/x".into())).unwrap();
        assert_eq!(h.count, 3);
        assert_eq!(h.counts[0], 0); // 1 ms
        assert_eq!(h.counts[2], 1); // 5 ms
        assert_eq!(h.counts[7], 2); // 250 ms
        assert_eq!(h.counts[11], 2); // 10 s: the 20 s request is only in +Inf
    }
}
