//! The trace breakdown probe: given a trace id, a correlation id (an `X-Request-ID` tag) or
//! "the slowest traces of a service lately", fetch the traces from Jaeger and say where each
//! spent its time — the critical path by category (database, LLM, outbound HTTP/gRPC,
//! messaging, the service's own code), the spans on it with their self time — and what is
//! worth fixing: N+1 queries, sequential calls that could run in parallel, retries and their
//! cost, errors, broken context propagation.

use super::analysis::{self, Category, Span, Tree};
use super::jaeger::Client;
use crate::ProbeError;
use crate::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, Finding, ParamSpec, Params, Probe, ProbeSpec, Severity,
    Table, group,
};
use std::collections::BTreeSet;

pub struct TracesProbe;

const STEPS: &[&str] = &["Connect", "Find traces", "Analyse"];

const PARAMS: &[ParamSpec] = &[
    ParamSpec::text(
        "trace_id",
        "Trace id",
        "One trace (16 or 32 hex digits). Or leave empty and name a service.",
        32,
        "",
    ),
    ParamSpec::text(
        "service",
        "Service",
        "The service whose traces to look at (Jaeger's service name), for a correlation id or the slowest traces.",
        200,
        "",
    ),
    ParamSpec::text(
        "correlation_id",
        "Correlation id",
        "Only traces with this request id (e.g. the X-Request-ID a user reported); more than one trace means a hop started a new trace.",
        200,
        "",
    ),
    ParamSpec::text(
        "correlation_key",
        "Correlation attribute",
        "The span attribute that carries the request id.",
        200,
        "http.request.header.x-request-id",
    ),
    ParamSpec::int(
        "lookback_m",
        "Look back (min)",
        "How far back to search for a service's traces.",
        1,
        10_080,
        "15",
    ),
    ParamSpec::int(
        "slowest",
        "Slowest traces",
        "Without a correlation id: analyse this many of the slowest traces found.",
        1,
        20,
        "3",
    ),
    ParamSpec::int(
        "search_limit",
        "Traces searched",
        "At most this many traces are fetched by a search.",
        1,
        500,
        "50",
    ),
    ParamSpec::int(
        "n_plus_one_min",
        "N+1 (repeats)",
        "The same statement shape this many times under one span is an N+1 pattern.",
        2,
        10_000,
        "5",
    ),
];

const CODES: &[CodeDoc] = &[
    CodeDoc {
        code: "TRACE_BREAKDOWN",
        severity: Severity::Info,
        meaning: "Where the trace spent its time: the critical path by category (database, LLM, outbound HTTP/gRPC, messaging, own code) with shares of the whole, and the spans on it with their self time.",
        remediation: "Start with the biggest share on the critical path: time off the critical path does not shorten the request.",
    },
    CodeDoc {
        code: "TRACE_NOT_FOUND",
        severity: Severity::Warning,
        meaning: "No trace has that id, or no trace matched the search (service, correlation id, look-back).",
        remediation: "Check the id (Jaeger keeps traces for its retention only; sampling may have dropped it), the service name as Jaeger lists it, and the look-back.",
    },
    CodeDoc {
        code: "TRACE_N_PLUS_ONE",
        severity: Severity::Warning,
        meaning: "One span runs the same query shape many times (an N+1 pattern): one round trip per item.",
        remediation: "Fetch the items in one query (`WHERE id = ANY($1)` / `IN (…)`), or load them with the parent (a join, DataLoader-style batching).",
    },
    CodeDoc {
        code: "TRACE_SEQUENTIAL_CALLS",
        severity: Severity::Warning,
        meaning: "A span makes several different outbound calls one after another; they take much of its time and could run at the same time.",
        remediation: "If the calls do not depend on each other, start them together (`Promise.all`, `tokio::join!`, `asyncio.gather`); the span then takes about as long as the slowest.",
    },
    CodeDoc {
        code: "TRACE_RETRIES",
        severity: Severity::Warning,
        meaning: "A call failed and was made again: the failed attempts' time is what the retries cost this request.",
        remediation: "Look at why the first attempts fail (the target's errors); make retries back off and bound them, and give up early when the caller's deadline cannot be met.",
    },
    CodeDoc {
        code: "TRACE_ERRORS",
        severity: Severity::Warning,
        meaning: "Spans of the trace ended with an error status (listed with their service, name and message).",
        remediation: "Start from the deepest failing span: its error usually explains its parents'.",
    },
    CodeDoc {
        code: "TRACE_BROKEN_CONTEXT",
        severity: Severity::Warning,
        meaning: "Context propagation is broken: spans whose parent is not in the trace (orphans), or one request id in several traces (a hop started a new trace instead of continuing it).",
        remediation: "Propagate the W3C `traceparent` header on every hop (HTTP clients, message headers): use the instrumented client, or inject the context by hand where a queue or a custom client sits between services.",
    },
];

pub static SPEC: ProbeSpec = ProbeSpec {
    name: "traces",
    kind: "traces",
    title: "Trace breakdown (where a slow request spent its time)",
    description: "Fetches a trace by id, by correlation id, or the slowest of a service lately, from Jaeger, and breaks it down: the critical path by category (database, LLM, outbound HTTP/gRPC, messaging, own code), self times, N+1 queries, sequential calls that could run in parallel, retries and their cost, errors and broken context propagation.",
    params: PARAMS,
    steps: STEPS,
    codes: CODES,
    run_timeout_s: 120,
    check: Some(check_params),
};

fn check_params(p: &Params) -> Result<(), String> {
    let id = p.text("trace_id");
    let service = p.text("service");
    if !id.is_empty() {
        if !(id.len() == 16 || id.len() == 32) || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("parameter trace_id must be 16 or 32 hexadecimal digits".into());
        }
    } else if service.is_empty() && p.text("correlation_id").is_empty() {
        return Err(
            "give a trace_id, a correlation_id, or a service for its slowest traces".into(),
        );
    }
    Ok(())
}

impl Probe for TracesProbe {
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

pub fn ms(us: i64) -> String {
    let m = us as f64 / 1000.0;
    if m >= 10_000.0 {
        format!("{:.1} s", m / 1000.0)
    } else if m >= 10.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.2} ms")
    }
}

fn pct(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "—".into();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    ctx.phase("Connect");
    let c = Client::new(&conn.url)?;
    ctx.pace(1).await?;
    let services = ctx
        .net(&c.target, c.services(ctx.step_timeout()), |e| e)
        .await?;
    ctx.detail(format!("{} services", services.len()));

    ctx.phase("Find traces");
    let id = params.text("trace_id").to_ascii_lowercase();
    let service = params.text("service");
    let corr = params.text("correlation_id");
    let corr_key = params.text("correlation_key");
    let mut traces: Vec<Vec<Span>>;
    let how;
    if !id.is_empty() {
        ctx.pace(1).await?;
        how = format!("GET /api/traces/{id}");
        traces = ctx
            .net(&c.target, c.trace(&id, ctx.step_timeout()), |e| e)
            .await?
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
    } else if !corr.is_empty() {
        // A request id is looked for in every service Jaeger knows (the named one first, at
        // most 20): the same id in several traces is a hop that started a new trace.
        let mut names: Vec<&str> = vec![];
        if !service.is_empty() {
            names.push(service);
        }
        for s in &services {
            if names.len() >= 20 {
                break;
            }
            if !names.contains(&s.as_str()) {
                names.push(s);
            }
        }
        how = format!(
            "GET /api/traces?service=…&lookback={}m&limit={}&tags={{\"{corr_key}\":\"{corr}\"}} for {} services",
            params.int("lookback_m"),
            params.int("search_limit"),
            names.len()
        );
        traces = vec![];
        let mut seen = BTreeSet::new();
        // Header attributes are string arrays in OpenTelemetry (`["req-42"]` once stored):
        // both forms are asked for.
        let forms = [corr.to_string(), serde_json::json!([corr]).to_string()];
        for name in names {
            for form in &forms {
                ctx.pace(1).await?;
                let found = ctx
                    .net(
                        &c.target,
                        c.search(
                            name,
                            params.int("lookback_m"),
                            params.int("search_limit"),
                            Some((corr_key, form)),
                            ctx.step_timeout(),
                        ),
                        |e| e,
                    )
                    .await?;
                for t in found {
                    if let Some(first) = t.first()
                        && seen.insert(first.trace_id.clone())
                    {
                        traces.push(t);
                    }
                }
            }
        }
    } else {
        ctx.pace(1).await?;
        how = format!(
            "GET /api/traces?service={service}&lookback={}m&limit={}",
            params.int("lookback_m"),
            params.int("search_limit"),
        );
        traces = ctx
            .net(
                &c.target,
                c.search(
                    service,
                    params.int("lookback_m"),
                    params.int("search_limit"),
                    None,
                    ctx.step_timeout(),
                ),
                |e| e,
            )
            .await?;
        traces.retain(|t| !t.is_empty());
    }
    if traces.is_empty() {
        let what = if !id.is_empty() {
            format!("No trace with id {id}")
        } else if !corr.is_empty() {
            format!(
                "No trace with {corr_key}={corr} in the last {} min",
                params.int("lookback_m")
            )
        } else {
            format!(
                "No trace of {service} in the last {} min",
                params.int("lookback_m")
            )
        };
        let mut f = Finding::new("TRACE_NOT_FOUND", Severity::Warning, what)
            .command(how)
            .remediation(crate::framework::remediation(CODES, "TRACE_NOT_FOUND"));
        if !service.is_empty() && !services.iter().any(|s| s == service) {
            f = f.fact(
                "services Jaeger knows",
                services
                    .iter()
                    .take(50)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        ctx.finding(f);
        return Ok(());
    }

    // One request id in several traces: the hops that started a new trace.
    if !corr.is_empty() && traces.len() > 1 {
        let mut t = Table::new(
            "traces with this request id",
            &["trace", "starts at service", "root span", "spans"],
        );
        for tr in &traces {
            let tree = analysis::tree(tr);
            if let Some(r) = tree.root {
                t.row(vec![
                    tr[r].trace_id.clone(),
                    tr[r].service.clone(),
                    tr[r].name.clone(),
                    tr.len().to_string(),
                ]);
            }
        }
        ctx.finding(
            Finding::new("TRACE_BROKEN_CONTEXT", Severity::Warning, format!("{corr_key}={corr} appears in {} traces: a hop started a new trace instead of continuing it", traces.len()))
                .fact("request id", corr)
                .fact("traces", traces.len())
                .command(how.clone())
                .table(t)
                .remediation(crate::framework::remediation(CODES, "TRACE_BROKEN_CONTEXT")),
        );
    }

    ctx.phase("Analyse");
    // The slowest first; with no correlation id only the `slowest` of them.
    traces.sort_by_key(|t| {
        let tree = analysis::tree(t);
        std::cmp::Reverse(tree.root.map(|r| t[r].duration).unwrap_or(0))
    });
    if id.is_empty() && corr.is_empty() {
        traces.truncate(params.int("slowest").max(1) as usize);
    } else {
        traces.truncate(20);
    }
    for spans in &traces {
        analyse(ctx, spans, params, &how);
    }
    Ok(())
}

/// The findings of one trace.
pub fn analyse(ctx: &Ctx, spans: &[Span], params: &Params, how: &str) {
    for f in findings(spans, params.int("n_plus_one_min").max(2) as usize, how) {
        ctx.finding(f);
    }
}

/// The findings of one trace (pure; the benchmark times it).
pub fn findings(spans: &[Span], n_plus_one_min: usize, how: &str) -> Vec<Finding> {
    let mut out = vec![];
    let t: Tree<'_> = analysis::tree(spans);
    let Some(root) = t.root else {
        return out;
    };
    let r = &spans[root];
    let trace = r.trace_id.clone();
    let short: String = trace.chars().take(16).collect();
    let total = r.duration;
    let path = analysis::critical_path(&t, root);
    let cats = analysis::by_category(&t, &path);
    let selfs = analysis::self_times(&t);
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();

    let mut cat_table = Table::new(
        "critical path by category",
        &[
            "category",
            "time on the critical path",
            "share of the request",
        ],
    );
    let mut ranked: Vec<(Category, i64)> = cats.iter().map(|(c, us)| (*c, *us)).collect();
    ranked.sort_by_key(|x| std::cmp::Reverse(x.1));
    for (cat, us) in &ranked {
        cat_table.row(vec![cat.as_str().to_string(), ms(*us), pct(*us, total)]);
    }
    // The spans on the critical path, by their time on it.
    let mut on_path: std::collections::HashMap<usize, i64> = std::collections::HashMap::new();
    for g in &path {
        *on_path.entry(g.span).or_insert(0) += g.to - g.from;
    }
    let mut on_path: Vec<(usize, i64)> = on_path.into_iter().collect();
    on_path.sort_by_key(|x| (std::cmp::Reverse(x.1), x.0));
    let mut span_table = Table::new(
        "spans on the critical path",
        &[
            "service",
            "span",
            "category",
            "on the critical path",
            "share",
            "self time",
            "duration",
        ],
    );
    for (i, us) in on_path.iter().take(30) {
        let s = &spans[*i];
        span_table.row(vec![
            s.service.clone(),
            s.name.clone(),
            analysis::category(s).as_str().to_string(),
            ms(*us),
            pct(*us, total),
            ms(selfs[*i]),
            ms(s.duration),
        ]);
    }
    let headline: Vec<String> = ranked
        .iter()
        .take(4)
        .map(|(c, us)| format!("{} {}", c.as_str(), pct(*us, total)))
        .collect();
    out.push(
        Finding::new(
            "TRACE_BREAKDOWN",
            Severity::Info,
            format!(
                "Trace {short}: {} in {} — {}",
                r.name,
                ms(total),
                headline.join(", ")
            ),
        )
        .fact("trace id", &trace)
        .fact("root span", format!("{}: {}", r.service, r.name))
        .fact("duration", ms(total))
        .fact("spans", group(spans.len() as u64))
        .fact(
            "services",
            services.iter().copied().collect::<Vec<_>>().join(", "),
        )
        .fact("critical path segments", path.len())
        .command(how.to_string())
        .table(cat_table)
        .table(span_table)
        .remediation(crate::framework::remediation(CODES, "TRACE_BREAKDOWN")),
    );

    for (p, shape, n, us) in analysis::n_plus_one(&t, n_plus_one_min)
        .into_iter()
        .take(10)
    {
        let ps = &spans[p];
        out.push(
            Finding::new(
                "TRACE_N_PLUS_ONE",
                Severity::Warning,
                format!(
                    "Trace {short}: {} runs the same query {n} times ({} in all)",
                    ps.name,
                    ms(us)
                ),
            )
            .fact("trace id", &trace)
            .fact("span", format!("{}: {}", ps.service, ps.name))
            .fact("query shape", &shape)
            .fact("times", n)
            .fact(
                "their time",
                format!("{} ({} of the request)", ms(us), pct(us, total)),
            )
            .command(how.to_string())
            .remediation(crate::framework::remediation(CODES, "TRACE_N_PLUS_ONE")),
        );
    }
    for (p, calls, sum, longest) in analysis::sequential(&t, 3, 0.3).into_iter().take(10) {
        let ps = &spans[p];
        let mut tb = Table::new(
            "the calls, in order",
            &[
                "call",
                "category",
                "start (ms after the parent)",
                "duration",
            ],
        );
        for &c in &calls {
            let s = &spans[c];
            tb.row(vec![
                s.name.clone(),
                analysis::category(s).as_str().to_string(),
                ms(s.start - ps.start),
                ms(s.duration),
            ]);
        }
        out.push(
            Finding::new("TRACE_SEQUENTIAL_CALLS", Severity::Warning, format!("Trace {short}: {} makes {} calls one after another ({}); together they could take about {}", ps.name, calls.len(), ms(sum), ms(longest)))
                .fact("trace id", &trace)
                .fact("span", format!("{}: {}", ps.service, ps.name))
                .fact("calls", calls.len())
                .fact("their time in sequence", ms(sum))
                .fact("in parallel, about", ms(longest))
                .fact("could save", ms(sum - longest))
                .command(how.to_string())
                .table(tb)
                .remediation(crate::framework::remediation(CODES, "TRACE_SEQUENTIAL_CALLS")),
        );
    }
    for (p, attempts, wasted) in analysis::retries(&t).into_iter().take(10) {
        let ps = &spans[p];
        let first = &spans[attempts[0]];
        let mut tb = Table::new("attempts", &["attempt", "status", "duration"]);
        for (n, &a) in attempts.iter().enumerate() {
            tb.row(vec![
                (n + 1).to_string(),
                if spans[a].error {
                    "error".into()
                } else {
                    "ok".into()
                },
                ms(spans[a].duration),
            ]);
        }
        out.push(
            Finding::new(
                "TRACE_RETRIES",
                Severity::Warning,
                format!(
                    "Trace {short}: {} was tried {} times; the failed attempts cost {}",
                    first.name,
                    attempts.len(),
                    ms(wasted)
                ),
            )
            .fact("trace id", &trace)
            .fact("under", format!("{}: {}", ps.service, ps.name))
            .fact("attempts", attempts.len())
            .fact(
                "failed attempts' time",
                format!("{} ({} of the request)", ms(wasted), pct(wasted, total)),
            )
            .command(how.to_string())
            .table(tb)
            .remediation(crate::framework::remediation(CODES, "TRACE_RETRIES")),
        );
    }
    let errors: Vec<&Span> = spans.iter().filter(|s| s.error).collect();
    if !errors.is_empty() {
        let mut tb = Table::new("spans with an error", &["service", "span", "message"]);
        for s in errors.iter().take(50) {
            let msg = [
                "exception.message",
                "otel.status_description",
                "error.type",
                "error.message",
            ]
            .iter()
            .find_map(|k| s.attrs.get(*k).cloned())
            .unwrap_or_default();
            tb.row(vec![
                s.service.clone(),
                s.name.clone(),
                msg.chars().take(300).collect(),
            ]);
        }
        out.push(
            Finding::new(
                "TRACE_ERRORS",
                Severity::Warning,
                format!("Trace {short}: {} spans ended with an error", errors.len()),
            )
            .fact("trace id", &trace)
            .fact("spans with an error", errors.len())
            .command(how.to_string())
            .table(tb)
            .remediation(crate::framework::remediation(CODES, "TRACE_ERRORS")),
        );
    }
    let orphans: Vec<usize> = t
        .tops
        .iter()
        .copied()
        .filter(|&i| Some(i) != t.root && spans[i].parent_id.is_some())
        .collect();
    if !orphans.is_empty() {
        let mut tb = Table::new(
            "spans whose parent is not in the trace",
            &["service", "span", "parent id"],
        );
        for &i in orphans.iter().take(50) {
            tb.row(vec![
                spans[i].service.clone(),
                spans[i].name.clone(),
                spans[i].parent_id.clone().unwrap_or_default(),
            ]);
        }
        out.push(
            Finding::new(
                "TRACE_BROKEN_CONTEXT",
                Severity::Warning,
                format!(
                    "Trace {short}: {} spans have a parent that is not in the trace",
                    orphans.len()
                ),
            )
            .fact("trace id", &trace)
            .fact("orphan spans", orphans.len())
            .command(how.to_string())
            .table(tb)
            .remediation(crate::framework::remediation(CODES, "TRACE_BROKEN_CONTEXT")),
        );
    }
    out
}
