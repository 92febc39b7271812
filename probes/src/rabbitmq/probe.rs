//! The RabbitMQ probe: queues with depth, ready vs unacknowledged, consumers and their
//! utilisation, publish/deliver/ack rates and the depth's growth between two samples,
//! messages piling up without consumers, dead-letter queues and their growth, queues near
//! `x-max-length`, memory and disk alarms, connection churn and unroutable messages — from
//! the management API, GET only. Reads are bounded: at most `max_queues` queues (the deepest
//! first), at most 20 dead-letter exchanges' bindings, at most 10 queues' depth history.

use super::Client;
use super::rules::{self, Limits, Queue};
use crate::ProbeError;
use crate::framework::{
    BoxFuture, Chart, CodeDoc, Connection, Ctx, Finding, ParamKind, ParamSpec, Params, Probe,
    ProbeSpec, Severity, Table, group,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

pub struct RabbitMqProbe;

const STEPS: &[&str] = &[
    "Connect",
    "Nodes",
    "Queues",
    "Second sample",
    "Dead-letter routes",
    "Depth history",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "vhost",
        label: "Virtual host",
        help: "Only this virtual host's queues (empty: every vhost the user may see).",
        kind: ParamKind::Text { max_len: 255 },
        default: "",
    },
    ParamSpec::int(
        "max_queues",
        "Queues read",
        "At most this many queues are read, the deepest first.",
        1,
        5000,
        "500",
    ),
    ParamSpec::int(
        "sample_s",
        "Sample interval (s)",
        "The queues are read twice this far apart, to see which grow (the management API refreshes its statistics every 5 s by default: keep this at 10 s or more).",
        1,
        60,
        "10",
    ),
    ParamSpec::int(
        "backlog_messages",
        "Backlog (messages)",
        "A queue with consumers, at least this many ready messages and growing is a backlog.",
        1,
        100_000_000,
        "1000",
    ),
    ParamSpec::int(
        "near_max_pct",
        "Near max length (%)",
        "Queues at or over this share of their x-max-length are flagged.",
        1,
        100,
        "80",
    ),
    ParamSpec::int(
        "churn_per_s",
        "Connection churn (/s)",
        "Connections opened per second at or over this are flagged (clients that connect per message).",
        1,
        100_000,
        "5",
    ),
];

const CODES: &[CodeDoc] = &[
    CodeDoc {
        code: "RMQ_SUMMARY",
        severity: Severity::Info,
        meaning: "Version, nodes, totals, message rates, and the deepest queues with their consumers, rates and growth.",
        remediation: "None; context for the other findings.",
    },
    CodeDoc {
        code: "RMQ_ALARM",
        severity: Severity::Critical,
        meaning: "A node raised its memory or disk alarm: RabbitMQ blocks every publishing connection until it clears.",
        remediation: "Memory: drain the deepest queues (consumers), move big backlogs to lazy/quorum queues, raise `vm_memory_high_watermark` only if the host has room. Disk: free space or raise the disk, check `disk_free_limit`.",
    },
    CodeDoc {
        code: "RMQ_NO_CONSUMERS",
        severity: Severity::Critical,
        meaning: "A queue holds ready messages and has no consumer (critical while messages keep arriving).",
        remediation: "Start the consumer service (is it crash-looping? the Kubernetes probe), or check it subscribes to this queue name and vhost; delete the queue if nothing should read it.",
    },
    CodeDoc {
        code: "RMQ_BACKLOG_GROWING",
        severity: Severity::Warning,
        meaning: "A queue with consumers has a growing backlog: they do not keep up with the publish rate (utilisation says whether they are busy or starved by a low prefetch).",
        remediation: "Busy consumers: add replicas or make each message cheaper. Low utilisation: raise the prefetch (`basic.qos`), look at what the consumer waits for (a database, an API).",
    },
    CodeDoc {
        code: "RMQ_UNACKED_STUCK",
        severity: Severity::Warning,
        meaning: "Consumers hold messages unacknowledged and acknowledge none: a consumer hangs or forgot to ack.",
        remediation: "Find the consumer (Connections → channels with unacked messages), look at its logs and thread dumps; closing its channel requeues the messages. Set `consumer_timeout` so stuck deliveries are returned.",
    },
    CodeDoc {
        code: "RMQ_NEAR_MAX_LENGTH",
        severity: Severity::Critical,
        meaning: "A queue is near or at its x-max-length: messages are dropped or dead-lettered (drop-head) or publishes refused (reject-publish) once full.",
        remediation: "Drain it (consumers), or raise the limit in the policy (`rabbitmqctl set_policy`) if the backlog is expected.",
    },
    CodeDoc {
        code: "RMQ_DEAD_LETTERS",
        severity: Severity::Critical,
        meaning: "A dead-letter queue (bound to a queue's x-dead-letter-exchange, or named like one) holds messages (critical while growing): messages are rejected, expire or overflow.",
        remediation: "Read a few dead letters (their `x-death` header says the queue and reason: rejected, expired, maxlen), fix the cause, then move them back (the shovel plugin) or discard them.",
    },
    CodeDoc {
        code: "RMQ_UNROUTABLE",
        severity: Severity::Warning,
        meaning: "Published messages match no binding: dropped, or returned to publishers that set `mandatory`.",
        remediation: "Check the exchange's bindings and the publishers' routing keys; add an alternate exchange to catch unroutable messages instead of losing them.",
    },
    CodeDoc {
        code: "RMQ_CONNECTION_CHURN",
        severity: Severity::Warning,
        meaning: "Connections are opened and closed at a high rate: clients connect per message, which costs the broker CPU and memory.",
        remediation: "Keep one long-lived connection per process and reuse channels; look at the clients by `connection_created` (the management UI's Connections tab).",
    },
];

pub static SPEC: ProbeSpec = ProbeSpec {
    name: "rabbitmq",
    kind: "rabbitmq",
    title: "RabbitMQ queues and broker health",
    description: "Reads the management API twice a few seconds apart: queue depth (ready vs unacknowledged), consumers and utilisation, publish/deliver/ack rates and growth, messages without consumers, dead-letter queues, queues near x-max-length, memory and disk alarms, connection churn and unroutable messages.",
    params: PARAMS,
    steps: STEPS,
    codes: CODES,
    run_timeout_s: 120,
    check: None,
};

impl Probe for RabbitMqProbe {
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

async fn get(ctx: &Ctx, c: &Client, path: &str) -> Result<serde_json::Value, ProbeError> {
    ctx.pace(1).await?;
    ctx.net(&c.target, c.get(path, ctx.step_timeout()), |e| e)
        .await
}

fn queues_path(vhost: &str, max: i64) -> String {
    let base = if vhost.is_empty() {
        "api/queues".to_string()
    } else {
        format!("api/queues/{}", super::segment(vhost))
    };
    format!(
        "{base}?page=1&page_size={max}&sort=messages&sort_reverse=true&columns=name,vhost,type,state,messages,messages_ready,messages_unacknowledged,consumers,consumer_utilisation,arguments,effective_policy_definition,message_stats"
    )
}

fn parse_queues(v: &serde_json::Value) -> (Vec<Queue>, u64) {
    let items = v
        .get("items")
        .and_then(|i| i.as_array())
        .cloned()
        .unwrap_or_default();
    let total = v
        .get("filtered_count")
        .and_then(|t| t.as_u64())
        .unwrap_or(items.len() as u64);
    (items.iter().filter_map(rules::parse_queue).collect(), total)
}

fn rate(r: f64) -> String {
    format!("{r:.1}")
}

fn who(q: &Queue) -> String {
    if q.vhost == "/" || q.vhost.is_empty() {
        q.name.clone()
    } else {
        format!("{} (vhost {})", q.name, q.vhost)
    }
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    let vhost = params.text("vhost").to_string();
    ctx.phase("Connect");
    let c = Client::new(&conn.url)?;
    let overview = get(ctx, &c, "api/overview").await?;
    let version = overview
        .get("rabbitmq_version")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();

    ctx.phase("Nodes");
    let nodes = get(ctx, &c, "api/nodes").await?;
    let nodes = nodes.as_array().cloned().unwrap_or_default();
    let mut node_table = Table::new(
        "nodes",
        &[
            "node",
            "running",
            "memory used / watermark",
            "disk free / limit",
            "file descriptors",
            "alarms",
        ],
    );
    for n in nodes.iter().take(50) {
        let name = n
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        let f = |k: &str| n.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let alarms = rules::node_alarms(n);
        node_table.row(vec![
            name.clone(),
            n.get("running")
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
                .to_string(),
            format!(
                "{} / {}",
                crate::framework::bytes(f("mem_used") as u64),
                crate::framework::bytes(f("mem_limit") as u64)
            ),
            format!(
                "{} / {}",
                crate::framework::bytes(f("disk_free") as u64),
                crate::framework::bytes(f("disk_free_limit") as u64)
            ),
            format!("{} / {}", f("fd_used"), f("fd_total")),
            alarms
                .iter()
                .map(|a| a.0.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ]);
        for (what, detail) in alarms {
            ctx.finding(
                Finding::new(
                    "RMQ_ALARM",
                    Severity::Critical,
                    format!("Node {name}: {what} alarm — publishers are blocked ({detail})"),
                )
                .fact("node", &name)
                .fact("alarm", &what)
                .fact("detail", &detail)
                .command("GET /api/nodes (mem_alarm, disk_free_alarm)")
                .remediation(crate::framework::remediation(CODES, "RMQ_ALARM")),
            );
        }
    }

    ctx.phase("Queues");
    let max = params.int("max_queues").max(1);
    let path = queues_path(&vhost, max);
    let t1 = Instant::now();
    let (first, total) = parse_queues(&get(ctx, &c, &path).await?);
    ctx.detail(format!("{} of {} queues", first.len(), group(total)));
    let sample = std::time::Duration::from_secs(params.int("sample_s").max(1) as u64);
    ctx.phase("Second sample");
    ctx.sleep(sample.saturating_sub(t1.elapsed())).await?;
    let (second, _) = parse_queues(&get(ctx, &c, &path).await?);
    let dt = t1.elapsed().as_secs_f64().max(0.001);
    let before: BTreeMap<(String, String), &Queue> = first
        .iter()
        .map(|q| ((q.vhost.clone(), q.name.clone()), q))
        .collect();
    let growth = |q: &Queue| -> (f64, f64) {
        match before.get(&(q.vhost.clone(), q.name.clone())) {
            Some(b) => ((q.ready - b.ready) / dt, b.unacked),
            None => (0.0, q.unacked),
        }
    };

    ctx.phase("Dead-letter routes");
    // The queues that receive dead letters: named by a dead-letter routing key on the
    // default exchange, bound to a dead-letter exchange, or named like one.
    let mut dlq: BTreeSet<(String, String)> = BTreeSet::new();
    let mut routes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut dlxs: BTreeSet<(String, String)> = BTreeSet::new();
    for q in &second {
        match (&q.dlx, &q.dl_routing_key) {
            (Some(x), Some(k)) if x.is_empty() => {
                dlq.insert((q.vhost.clone(), k.clone()));
                routes
                    .entry((q.vhost.clone(), k.clone()))
                    .or_default()
                    .push(q.name.clone());
            }
            (Some(x), _) if !x.is_empty() => {
                dlxs.insert((q.vhost.clone(), x.clone()));
            }
            _ => {}
        }
    }
    for (vh, x) in dlxs.iter().take(20) {
        let path = format!(
            "api/exchanges/{}/{}/bindings/source",
            super::segment(vh),
            super::segment(x)
        );
        let bindings = match get(ctx, &c, &path).await {
            Ok(b) => b,
            // A dead-letter exchange that does not exist loses every dead letter.
            Err(ProbeError::Server { reason, .. }) if reason.contains("404") => {
                let from: Vec<String> = second
                    .iter()
                    .filter(|q| q.vhost == *vh && q.dlx.as_deref() == Some(x.as_str()))
                    .map(|q| q.name.clone())
                    .collect();
                ctx.finding(
                    Finding::new(
                        "RMQ_DEAD_LETTERS",
                        Severity::Critical,
                        format!("Dead-letter exchange {x} does not exist: dead letters of {} are lost", from.join(", ")),
                    )
                    .fact("vhost", vh)
                    .fact("exchange", x)
                    .fact("queues dead-lettering to it", from.join(", "))
                    .command(format!("GET /{path}"))
                    .remediation("Declare the exchange and bind a dead-letter queue to it (or fix the queue's x-dead-letter-exchange / policy)."),
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        for b in bindings.as_array().into_iter().flatten() {
            if b.get("destination_type").and_then(|v| v.as_str()) == Some("queue")
                && let Some(d) = b.get("destination").and_then(|v| v.as_str())
            {
                dlq.insert((vh.clone(), d.to_string()));
                let from: Vec<String> = second
                    .iter()
                    .filter(|q| q.vhost == *vh && q.dlx.as_deref() == Some(x.as_str()))
                    .map(|q| q.name.clone())
                    .collect();
                routes
                    .entry((vh.clone(), d.to_string()))
                    .or_default()
                    .extend(from);
            }
        }
    }

    let lim = Limits {
        backlog: params.int("backlog_messages") as f64,
        near_max: params.int("near_max_pct") as f64 / 100.0,
    };
    let mut summary_rows = Table::new(
        &format!("the deepest queues (of {})", group(total)),
        &[
            "queue",
            "ready",
            "unacked",
            "consumers",
            "utilisation",
            "publish/s",
            "deliver/s",
            "ack/s",
            "ready growth/s",
        ],
    );
    let mut flagged: Vec<(Finding, Queue)> = vec![];
    for q in &second {
        let (g, unacked_before) = growth(q);
        if summary_rows.rows.len() < 20 {
            summary_rows.row(vec![
                who(q),
                group(q.ready as u64),
                group(q.unacked as u64),
                group(q.consumers as u64),
                q.utilisation
                    .map(|u| format!("{:.0} %", u * 100.0))
                    .unwrap_or_else(|| "—".into()),
                rate(q.publish_rate),
                rate(q.deliver_rate),
                rate(q.ack_rate),
                format!("{g:+.1}"),
            ]);
        }
        let key = (q.vhost.clone(), q.name.clone());
        let is_dlq = dlq.contains(&key) || rules::looks_like_dlq(&q.name);
        for (code, sev, why) in rules::judge_queue(q, g, unacked_before, is_dlq, &lim) {
            let mut f = Finding::new(code, sev, format!("Queue {}: {why}", who(q)))
                .fact("queue", &q.name)
                .fact("vhost", &q.vhost)
                .fact("type", &q.kind)
                .fact("ready", group(q.ready as u64))
                .fact("unacknowledged", group(q.unacked as u64))
                .fact("consumers", group(q.consumers as u64))
                .fact("ready growth", format!("{g:+.1}/s over {dt:.1} s"))
                .fact("publish/s", rate(q.publish_rate))
                .fact("deliver/s", rate(q.deliver_rate))
                .fact("ack/s", rate(q.ack_rate));
            if let Some(u) = q.utilisation {
                f = f.fact("consumer utilisation", format!("{:.0} %", u * 100.0));
            }
            if let Some(m) = q.max_length {
                f = f.fact("x-max-length", m).fact("overflow", &q.overflow);
            }
            if let Some(from) = routes.get(&key) {
                f = f.fact("dead letters from", from.join(", "));
            }
            if let Some(x) = &q.dlx {
                f = f.fact(
                    "dead-letters to",
                    if x.is_empty() {
                        "(default exchange)"
                    } else {
                        x
                    },
                );
            }
            flagged.push((
                f.command(format!("GET /{path} (twice, {dt:.1} s apart)"))
                    .remediation(crate::framework::remediation(CODES, code)),
                q.clone(),
            ));
        }
    }

    ctx.phase("Depth history");
    // The management API keeps each queue's depth for the last minutes: a chart of it for
    // the flagged queues (the first 10).
    let mut charted: BTreeMap<(String, String), Chart> = BTreeMap::new();
    for (_, q) in flagged.iter().take(10) {
        let key = (q.vhost.clone(), q.name.clone());
        if charted.contains_key(&key) {
            continue;
        }
        let path = format!(
            "api/queues/{}/{}?lengths_age=600&lengths_incr=10&msg_rates_age=600&msg_rates_incr=10&columns=messages_ready_details,messages_unacknowledged_details",
            super::segment(&q.vhost),
            super::segment(&q.name)
        );
        let Ok(v) = get(ctx, &c, &path).await else {
            continue;
        };
        let series = |k: &str| -> Vec<(f64, f64)> {
            let mut pts: Vec<(f64, f64)> = v
                .get(k)
                .and_then(|d| d.get("samples"))
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    Some((
                        s.get("timestamp")?.as_f64()? / 1000.0,
                        s.get("sample")?.as_f64()?,
                    ))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        };
        charted.insert(
            key,
            Chart::new(format!("queue {}: messages", q.name), "messages")
                .series("ready", &series("messages_ready_details"))
                .series("unacknowledged", &series("messages_unacknowledged_details")),
        );
    }
    for (f, q) in flagged {
        let chart = charted
            .get(&(q.vhost.clone(), q.name.clone()))
            .cloned()
            .unwrap_or_default();
        ctx.finding(f.chart(chart));
    }

    // The broker as a whole: unroutable messages and connection churn.
    let (drop_rate, return_rate, dropped, returned) = rules::unroutable(&overview);
    if drop_rate > 0.0 || return_rate > 0.0 {
        ctx.finding(
            Finding::new(
                "RMQ_UNROUTABLE",
                Severity::Warning,
                format!(
                    "Messages match no binding: {drop_rate:.1}/s dropped, {return_rate:.1}/s returned to their publishers"
                ),
            )
            .fact("dropped/s", rate(drop_rate))
            .fact("returned/s", rate(return_rate))
            .fact("dropped since the stats reset", group(dropped as u64))
            .fact("returned since the stats reset", group(returned as u64))
            .command("GET /api/overview (message_stats.drop_unroutable, return_unroutable)")
            .remediation(crate::framework::remediation(CODES, "RMQ_UNROUTABLE")),
        );
    }
    let (opened, closed) = rules::churn(&overview);
    let churn_limit = params.int("churn_per_s") as f64;
    if opened >= churn_limit {
        ctx.finding(
            Finding::new(
                "RMQ_CONNECTION_CHURN",
                Severity::Warning,
                format!("{opened:.1} connections opened and {closed:.1} closed per second"),
            )
            .fact("opened/s", rate(opened))
            .fact("closed/s", rate(closed))
            .fact("threshold", format!("{churn_limit}/s"))
            .fact(
                "connections now",
                overview
                    .get("object_totals")
                    .and_then(|o| o.get("connections"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0),
            )
            .command("GET /api/overview (churn_rates)")
            .remediation(crate::framework::remediation(CODES, "RMQ_CONNECTION_CHURN")),
        );
    }

    let n = |a: &str, b: &str| {
        overview
            .get(a)
            .and_then(|v| v.get(b))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    let r = |k: &str| {
        overview
            .get("message_stats")
            .and_then(|m| m.get(k))
            .and_then(|d| d.get("rate"))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    ctx.finding(
        Finding::new(
            "RMQ_SUMMARY",
            Severity::Info,
            format!(
                "RabbitMQ {version}: {} nodes, {} queues, {} messages ({} ready, {} unacked) · {} requests",
                nodes.len(),
                group(total),
                group(n("queue_totals", "messages") as u64),
                group(n("queue_totals", "messages_ready") as u64),
                group(n("queue_totals", "messages_unacknowledged") as u64),
                ctx.commands()
            ),
        )
        .fact("version", &version)
        .fact("vhost", if vhost.is_empty() { "(all)" } else { &vhost })
        .fact("connections", n("object_totals", "connections"))
        .fact("channels", n("object_totals", "channels"))
        .fact("consumers", n("object_totals", "consumers"))
        .fact("publish/s", rate(r("publish_details")))
        .fact("deliver/s", rate(r("deliver_get_details")))
        .fact("ack/s", rate(r("ack_details")))
        .fact("queues read", format!("{} of {}", second.len(), group(total)))
        .fact("requests", ctx.commands())
        .command("GET /api/overview, /api/nodes, /api/queues")
        .table(node_table)
        .table(summary_rows)
        .remediation(crate::framework::remediation(CODES, "RMQ_SUMMARY")),
    );
    Ok(())
}
