//! Benchmark of the trace breakdown (issue 16: "a 5,000-span trace < 200 ms after fetch").
//! Builds a 5,000-span trace shaped like a busy request — 50 handlers, each with database
//! queries (an N+1 among them), LLM calls, outbound calls, a retry, nested internal spans
//! four levels deep — and times the whole analysis (`probe::findings`: critical path,
//! categories, self times, N+1, sequential calls, retries, errors, orphans), the part that
//! runs after the trace is fetched.
//!
//! `cargo run --release -p probes --example bench_traces [runs]`

use probes::traces::analysis::Span;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let spans = trace(5000);
    let mut times = vec![];
    let mut last = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        last = probes::traces::probe::findings(&spans, 5, "bench");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for f in &last {
        *codes.entry(f.code.clone()).or_default() += 1;
    }
    println!(
        "{} spans: {runs} runs, median {:.1} ms, p95 {:.1} ms, max {:.1} ms; findings {codes:?}",
        spans.len(),
        times[times.len() / 2],
        times[(times.len() * 95 / 100).min(times.len() - 1)],
        times[times.len() - 1]
    );
}

fn trace(n: usize) -> Vec<Span> {
    let mut out = vec![];
    let mut next = 1u64;
    let mut id = || {
        next += 1;
        format!("{next:016x}")
    };
    let attrs = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let root = id();
    out.push(Span {
        span_id: root.clone(),
        parent_id: None,
        trace_id: "bench".into(),
        service: "gateway".into(),
        name: "POST /orders/batch".into(),
        kind: "server".into(),
        start: 0,
        duration: 60_000_000,
        error: false,
        attrs: BTreeMap::new(),
    });
    let mut handler = 0;
    while out.len() < n {
        let h = id();
        let h_start = handler as i64 * 1_100_000;
        out.push(Span {
            span_id: h.clone(),
            parent_id: Some(root.clone()),
            trace_id: "bench".into(),
            service: format!("svc-{}", handler % 7),
            name: format!("handle item {handler}"),
            kind: "internal".into(),
            start: h_start,
            duration: 1_000_000,
            ..Default::default()
        });
        let mut t = h_start + 10_000;
        // 40 queries of one shape (an N+1), nested internal spans, LLM and HTTP calls.
        for q in 0..40 {
            out.push(Span {
                span_id: id(),
                parent_id: Some(h.clone()),
                trace_id: "bench".into(),
                service: "orders".into(),
                name: "SELECT".into(),
                kind: "client".into(),
                start: t,
                duration: 5_000,
                attrs: attrs(&[
                    ("db.system", "postgresql".into()),
                    (
                        "db.statement",
                        format!("SELECT * FROM items WHERE id = {q}"),
                    ),
                ]),
                ..Default::default()
            });
            t += 6_000;
        }
        let mut parent = h.clone();
        for depth in 0..4 {
            let s = id();
            out.push(Span {
                span_id: s.clone(),
                parent_id: Some(parent.clone()),
                trace_id: "bench".into(),
                service: "orders".into(),
                name: format!("step {depth}"),
                kind: "internal".into(),
                start: t,
                duration: 400_000 - depth * 50_000,
                ..Default::default()
            });
            parent = s;
            t += 10_000;
        }
        for (name, a, dur, err) in [
            (
                "chat gpt-4o",
                ("gen_ai.operation.name", "chat"),
                200_000,
                false,
            ),
            (
                "POST /charge",
                ("http.request.method", "POST"),
                50_000,
                true,
            ),
            (
                "POST /charge",
                ("http.request.method", "POST"),
                40_000,
                false,
            ),
        ] {
            out.push(Span {
                span_id: id(),
                parent_id: Some(parent.clone()),
                trace_id: "bench".into(),
                service: "orders".into(),
                name: name.into(),
                kind: "client".into(),
                start: t,
                duration: dur,
                error: err,
                attrs: attrs(&[(a.0, a.1.into()), ("server.address", "payments".into())]),
            });
            t += dur + 1_000;
        }
        handler += 1;
    }
    out.truncate(n);
    out
}
