//! Kafka pages: the Kafka targets, a target's consumer groups (sorted, paged, served from
//! each group's latest sampled state), and a group (verdict with its reason, catch-up,
//! lag and produce/consume graphs over a chosen range, partitions, members). Charts are SVG
//! rendered by the server; once hydrated the pages refresh themselves every 15 s.

use crate::components::charts::{
    ChartMark, LineChart, SmallMultiples, Sparkline, fmt_count, fmt_num,
};
use crate::components::common::{EmptyState, ErrorPanel, Loading, query_value};
use crate::components::time::LocalTime;
use crate::kafka_fns::*;
use crate::target_fns::list_targets;
use domain::kafka::{KafkaGroup, LagSeries};
use domain::targets::TargetKind;
use leptos::prelude::*;
use leptos_meta::Title;

/// A message count in a table cell: exact below 10,000, compact above (12k, 3.4M).
fn fmt_lag(n: i64) -> String {
    if n < 10_000 {
        fmt_count(n)
    } else {
        fmt_num(n as f64)
    }
}
use leptos_router::hooks::{use_params_map, use_query_map};

fn status_class(s: &str) -> String {
    format!("badge verdict verdict-{}", s.to_ascii_lowercase())
}

fn time_lag(s: Option<f64>, kind: Option<&str>) -> String {
    match (s, kind) {
        (Some(x), Some("at_least")) => format!("≥ {}", secs(x)),
        (Some(x), Some("exact")) => secs(x),
        (Some(x), _) => format!("≈ {}", secs(x)),
        _ => "–".into(),
    }
}

fn secs(x: f64) -> String {
    if x < 90.0 {
        format!("{x:.0} s")
    } else if x < 5400.0 {
        format!("{:.0} min", x / 60.0)
    } else if x < 172_800.0 {
        format!("{:.1} h", x / 3600.0)
    } else {
        format!("{:.1} d", x / 86_400.0)
    }
}

/// Marks a page to be re-rendered every 15 s once enhanced (`components::enhance`; the
/// sampler's interval is 30 s by default).
#[component]
fn RefreshEvery15() -> impl IntoView {
    view! { <span hidden data-refresh-every="15"></span> }
}

#[component]
pub fn KafkaIndex() -> impl IntoView {
    let targets = Resource::new(|| (), |_| list_targets());
    view! {
        <Title text="Kafka"/>
        <h1>"Kafka"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match targets.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(list) => {
                        let kafka: Vec<_> = list.into_iter().filter(|t| t.kind == TargetKind::KAFKA).collect();
                        if kafka.is_empty() {
                            view! {
                                <EmptyState title="No Kafka targets yet"
                                    what="Add a Kafka target (bootstrap servers) on the Targets page; Lookout then samples its consumer groups every 30 s and shows lag, time lag and a verdict for each."
                                    status="Nothing to sample."/>
                            }.into_any()
                        } else {
                            view! {
                                <ul class="plain target-list">
                                    {kafka.into_iter().map(|t| view! {
                                        <li><a href=format!("/kafka/{}", t.id)><strong>{t.name.clone()}</strong></a>
                                            <span class="muted">{format!(" · {} · {}", t.environment, t.connection)}</span></li>
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        }
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn KafkaTargetPage() -> impl IntoView {
    let params = use_params_map();
    let q = use_query_map();
    let target = move || {
        params
            .read()
            .get("target")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let get = move |k: &str| q.read().get(k).filter(|s| !s.is_empty());
    let page = Resource::new(
        move || (target(), get("sort"), get("order"), get("cursor")),
        |(t, s, o, c)| kafka_groups(t, s, o, c),
    );
    let sort_link = move |col: &'static str, default_desc: bool| {
        let current = get("sort").unwrap_or_else(|| "lag".into());
        let desc = get("order")
            .map(|o| o == "desc")
            .unwrap_or(current == "lag");
        let next_desc = if current == col { !desc } else { default_desc };
        // The current sort shows its direction.
        format!(
            "?sort={col}&order={}",
            if next_desc { "desc" } else { "asc" }
        )
    };
    view! {
        <Title text="Kafka consumer groups"/>
        <RefreshEvery15/>
        <h1>"Consumer groups"</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(p) => {
                        let t = target();
                        view! {
                            <p class="round" id="last-round">{match p.last_round.clone() {
                                None => view! { <span class="muted">"Not sampled yet: the first sample arrives within one interval (LOOKOUT_KAFKA_SAMPLE_SECS)."</span> }.into_any(),
                                Some(r) if r.ok => view! { <span>"Last sample "<LocalTime at=r.at/>{format!(": {} groups, {} partitions, {} Kafka requests in {} ms.", r.groups, r.partitions, r.requests, r.duration_ms)}</span> }.into_any(),
                                Some(r) => view! { <span class="form-error">"The last sample "<LocalTime at=r.at/>" was skipped: "{r.error.clone().unwrap_or_default()}" The figures below are from the last good sample."</span> }.into_any(),
                            }}</p>
                            {if p.groups.is_empty() {
                                view! { <p class="muted">"No consumer groups sampled on this target."</p> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap">
                                    <table class="data kafka-groups" id="kafka-groups">
                                        <thead><tr>
                                            <th><a href=sort_link("group", false)>"Group"</a></th>
                                            <th><a href=sort_link("status", true)>"Verdict"</a></th>
                                            <th><a href=sort_link("lag", true)>"Lag"</a></th>
                                            <th><a href=sort_link("time_lag", true)>"Time lag"</a></th>
                                            <th>"Trend"</th>
                                            <th><a href=sort_link("state", false)>"State"</a></th>
                                            <th><a href=sort_link("members", true)>"Members"</a></th>
                                            <th>"Why"</th>
                                        </tr></thead>
                                        <tbody>
                                        {p.groups.into_iter().map(|g| view! {
                                            <tr data-group=g.group.clone()>
                                                <td><a href=format!("/kafka/{t}/groups/{}", query_value(&g.group))>{g.group.clone()}</a></td>
                                                <td><span class=status_class(&g.status)>{if g.status == g.worst || g.status == "OK" { g.status.clone() } else { format!("{} ({})", g.status, g.worst) }}</span></td>
                                                <td class="num" data-unknown=g.lag_unknown_partitions>{g.lag_text(fmt_lag)}</td>
                                                <td>{time_lag(g.time_lag_s, g.time_lag_kind.as_deref())}{(g.lag_unknown_partitions > 0).then_some(" + unknown")}</td>
                                                <td><Sparkline values=g.trend.clone()/></td>
                                                <td>{g.state.clone()}</td>
                                                <td class="num">{g.members.len()}</td>
                                                <td class="reason">{g.reason.clone()}</td>
                                            </tr>
                                        }).collect_view()}
                                        </tbody>
                                    </table>
                                    </div>
                                    {p.next_cursor.clone().map(|c| {
                                        let s = get("sort").unwrap_or_else(|| "lag".into());
                                        let o = get("order").unwrap_or_default();
                                        view! { <p><a class="button" href=format!("?sort={s}&order={o}&cursor={}", query_value(&c))>"Next page"</a></p> }
                                    })}
                                }.into_any()
                            }}
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

const RANGES: [(&str, i64); 7] = [
    ("15m", 900),
    ("1h", 3600),
    ("6h", 21_600),
    ("24h", 86_400),
    ("48h", 172_800),
    ("7d", 604_800),
    ("30d", 2_592_000),
];

#[component]
pub fn KafkaGroupPage() -> impl IntoView {
    let params = use_params_map();
    let q = use_query_map();
    let target = move || {
        params
            .read()
            .get("target")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let group = move || params.read().get("group").unwrap_or_default();
    let range = move || {
        let r = q.read().get("range").unwrap_or_else(|| "1h".into());
        RANGES
            .iter()
            .find(|(n, _)| *n == r)
            .copied()
            .unwrap_or(RANGES[1])
    };
    let data = Resource::new(
        move || (target(), group(), range().1),
        |(t, g, r)| async move {
            let grp = kafka_group_state(t, g.clone()).await?;
            let series = kafka_lag(t, g, r).await?;
            Ok::<_, crate::error::AppError>((grp, series))
        },
    );
    view! {
        <Title text=crate::components::common::param_title(params, |p| format!("Group {}", p.get("group").unwrap_or_default()))/>
        <RefreshEvery15/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok((g, s)) => view! { <GroupView g=g s=s target=target() range=range().0/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn GroupView(g: KafkaGroup, s: LagSeries, target: i64, range: &'static str) -> impl IntoView {
    let xs: Vec<f64> = s
        .points
        .iter()
        .map(|p| p.at.unix_timestamp() as f64)
        .collect();
    let lag: Vec<f64> = s.points.iter().map(|p| p.lag as f64).collect();
    // Rates between consecutive samples (messages per second).
    let rate = |f: fn(&domain::kafka::LagPoint) -> i64| -> Vec<f64> {
        let mut v = vec![0.0];
        for w in s.points.windows(2) {
            let dt = (w[1].at - w[0].at).as_seconds_f64().max(0.001);
            v.push(((f(&w[1]) - f(&w[0])) as f64 / dt).max(0.0));
        }
        v
    };
    let produce = rate(|p| p.end);
    let consume = rate(|p| p.committed);
    let first = s.points.first().map(|p| p.at);
    let last = s.points.last().map(|p| p.at);
    let marks: Vec<ChartMark> = s
        .annotations
        .iter()
        .map(|a| ChartMark {
            from: a.from.unix_timestamp() as f64,
            to: a.to.map(|t| t.unix_timestamp() as f64),
            label: a.key.clone(),
            title: a.title.clone(),
            href: if a.kind == "deployment" {
                format!("/deployments/{}", a.key)
            } else {
                format!("/incidents/{}", a.key)
            },
        })
        .collect();
    let annotations = s.annotations.clone();
    let band: Vec<(f64, f64, String)> = s
        .band
        .iter()
        .map(|b| {
            let from = b.at.unix_timestamp() as f64;
            (from, from + b.seconds as f64, b.status.clone())
        })
        .collect();
    // Small multiples: at most this many partitions drawn (the table lists them all).
    const MULTIPLES: usize = 200;
    let multiples: Vec<(String, Vec<f64>)> = s
        .partitions
        .iter()
        .take(MULTIPLES)
        .map(|p| {
            // The partition first: a long topic name is cut, the partition never.
            (
                format!("p{} · {}", p.partition, p.topic),
                p.lag.iter().map(|l| *l as f64).collect(),
            )
        })
        .collect();
    let more_partitions = s.partitions.len().saturating_sub(MULTIPLES);
    // Three or more rebalances in an hour is churn worth a look.
    let churn = if g.rebalances_last_hour >= 3 {
        "warn-text"
    } else {
        ""
    };
    view! {
        <p class="muted"><a href=format!("/kafka/{target}")>"← all groups"</a></p>
        <h1>{g.group.clone()}</h1>
        <section class=format!("panel verdict-panel verdict-{}", g.status.to_ascii_lowercase()) id="verdict">
            <div class="badges">
                <span class=status_class(&g.status) id="group-status">{g.status.clone()}</span>
                <span class="badge">{g.worst.clone()}</span>
                <span>"State "<strong>{g.state.clone()}</strong></span>
                <span id="group-lag">"Lag "<strong>{g.lag_text(fmt_count)}</strong>
                    {(g.lag_unknown_partitions > 0).then(|| view! { <span class="muted">{format!(" (at most {} if the consumer starts from the earliest offset)", fmt_count(g.lag_upper_bound))}</span> })}</span>
                <span>"Time lag "<strong>{time_lag(g.time_lag_s, g.time_lag_kind.as_deref())}{(g.lag_unknown_partitions > 0).then_some(" + unknown")}</strong>
                    {(g.time_lag_kind.as_deref() != Some("exact")).then(|| view! { <span class="muted">" (estimated from the log-end history)"</span> })}</span>
                <span id="rebalances" class=churn>
                    "Rebalances (last hour) "<strong>{g.rebalances_last_hour}</strong>
                    {g.last_rebalance.map(|t| view! { <span class="muted">" · last "<LocalTime at=t/></span> })}
                </span>
                <span class="muted">"Sampled "<LocalTime at=g.at/></span>
            </div>
            <p class="reason" id="group-reason">{g.reason.clone()}</p>
            <p id="catch-up"><strong>{g.catch_up.clone()}</strong></p>
        </section>
        <nav class="kind-filter" aria-label="Range">
            {RANGES.iter().map(|(n, _)| view! { <a href=format!("?range={n}") class:active=*n == range>{*n}</a> }).collect_view()}
        </nav>
        <section class="panel charts">
            <LineChart title=format!("Total lag, last {range}") xs=xs.clone() a=("lag".to_string(), lag) unit="messages" marks=marks.clone() band=band/>
            <p class="muted band-legend">"Verdict band (worst per "{if s.rollup == "raw" { "minute".to_string() } else { s.rollup.clone() }}"): "
                <span class="key band-ok">"OK"</span>" "<span class="key band-incomplete">"incomplete"</span>" "
                <span class="key band-warn">"WARN"</span>" "<span class="key band-err">"ERR"</span></p>
            {(!annotations.is_empty()).then(|| view! {
                <p class="muted" id="annotations">"Incidents and deployments in this range: "
                    {annotations.into_iter().map(|a| view! {
                        <a href=if a.kind == "deployment" { format!("/deployments/{}", a.key) } else { format!("/incidents/{}", a.key) }
                            title=a.title.clone() class=format!("annotation-{}", a.kind)>{a.key.clone()}</a>" "
                    }).collect_view()}
                </p>
            })}
            <LineChart title="Produce vs consume" xs=xs.clone() a=("produce".to_string(), produce) b=("consume".to_string(), consume) unit="messages/s" marks=marks/>
            <p class="muted">
                {match (first, last) {
                    (Some(f), Some(l)) => view! { <span>{format!("{} samples from ", s.points.len())}<LocalTime at=f/>" to "<LocalTime at=l/>{format!(" (resolution: {})", s.rollup)}</span> }.into_any(),
                    _ => view! { <span>"No samples in this range."</span> }.into_any(),
                }}
            </p>
        </section>
        {(!g.dlq.is_empty()).then(|| view! {
            <section class="panel" id="dlq">
                <h2>"Dead-letter topics"</h2>
                <div class="table-wrap">
                <table class="data">
                    <thead><tr><th>"DLQ topic"</th><th>"For topic"</th><th>"Messages"</th><th>"Since the previous sample"</th></tr></thead>
                    <tbody>
                    {g.dlq.clone().into_iter().map(|d| view! {
                        <tr data-dlq=d.topic.clone()>
                            <td><a href=format!("/kafka/{target}/topics/{}", query_value(&d.topic))>{d.topic.clone()}</a></td>
                            <td>{d.source.clone()}</td>
                            <td class="num">{fmt_count(d.messages)}</td>
                            <td class="num">{match d.growth {
                                Some(n) if n > 0 => format!("+{}", fmt_count(n)),
                                Some(n) if n < 0 => format!("−{}", fmt_count(-n)),
                                Some(_) => "no change".to_string(),
                                None => "–".to_string(),
                            }}</td>
                        </tr>
                    }).collect_view()}
                    </tbody>
                </table>
                </div>
                <p class="muted">"A growing DLQ means messages are failing now: read the newest dead letters for the error, fix the consumer, then replay them."</p>
            </section>
        })}
        <section class="panel" id="partition-multiples">
            <h2>{format!("Lag per partition, last {range}")}</h2>
            {if multiples.is_empty() || xs.len() < 2 {
                view! { <p class="muted">"Not enough samples in this range yet."</p> }.into_any()
            } else {
                view! { <SmallMultiples xs=xs series=multiples unit="messages"/> }.into_any()
            }}
            {(more_partitions > 0).then(|| view! { <p class="muted">{format!("{more_partitions} more partitions are in the table below.")}</p> })}
        </section>
        <section class="panel">
            <h2>"Partitions"</h2>
            <div class="table-wrap">
            <table class="data" id="partitions">
                <thead><tr><th>"Topic"</th><th>"Partition"</th><th>"Verdict"</th><th>"Committed"</th><th>"Log start"</th><th>"Log end"</th><th>"Lag"</th><th>"Time lag"</th><th>"Why"</th></tr></thead>
                <tbody>
                {g.verdicts.clone().into_iter().map(|v| view! {
                    <tr>
                        <td><a href=format!("/kafka/{target}/topics/{}", query_value(&v.topic))>{v.topic.clone()}</a></td>
                        <td class="num">{v.partition}</td>
                        <td><span class=status_class(&v.status)>{v.status.clone()}</span></td>
                        <td class="num">{v.committed.map(|c| fmt_num(c as f64)).unwrap_or_else(|| "none".into())}</td>
                        <td class="num">{fmt_num(v.start as f64)}</td>
                        <td class="num">{fmt_num(v.end as f64)}</td>
                        <td class="num">{v.lag.map(|l| fmt_num(l as f64)).unwrap_or_else(|| "–".into())}</td>
                        <td>{time_lag(v.time_lag_s, v.time_lag_kind.as_deref())}</td>
                        <td class="reason">{v.reason.clone()}</td>
                    </tr>
                }).collect_view()}
                </tbody>
            </table>
            </div>
        </section>
        <section class="panel">
            <h2>{format!("Members ({})", g.members.len())}</h2>
            {g.members.is_empty().then(|| view! { <p class="muted">"No members: nobody is consuming."</p> })}
            {(!g.members.is_empty()).then(|| view! {
                <div class="table-wrap">
                <table class="data" id="members">
                    <thead><tr><th>"Client id"</th><th>"Host"</th><th>"Partitions"</th><th>"Assignment"</th><th>"Member id"</th></tr></thead>
                    <tbody>
                    {g.members.clone().into_iter().map(|m| view! {
                        <tr class:idle=m.parts.is_empty()>
                            <td><strong>{m.client_id.clone()}</strong></td>
                            <td>{m.host.clone()}</td>
                            <td class="num">{m.parts.len()}</td>
                            <td>{if m.parts.is_empty() {
                                "none (idle)".to_string()
                            } else {
                                m.parts.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>().join(", ")
                            }}</td>
                            <td class="muted mono">{m.id.clone()}</td>
                        </tr>
                    }).collect_view()}
                    </tbody>
                </table>
                </div>
            })}
        </section>
    }
}

/// A topic: the groups reading it, worst first.
#[component]
pub fn KafkaTopicPage() -> impl IntoView {
    let params = use_params_map();
    let target = move || {
        params
            .read()
            .get("target")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let topic = move || params.read().get("topic").unwrap_or_default();
    let groups = Resource::new(
        move || (target(), topic()),
        |(t, p)| kafka_topic_groups(t, p),
    );
    view! {
        <Title text=crate::components::common::param_title(params, |p| format!("Topic {}", p.get("topic").unwrap_or_default()))/>
        <RefreshEvery15/>
        <p class="muted"><a href=move || format!("/kafka/{}", target())>"← all groups"</a></p>
        <h1>{move || format!("Topic {}", topic())}</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match groups.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No sampled group reads this topic."</p> }.into_any(),
                    Ok(list) => {
                        let t = target();
                        let name = topic();
                        view! {
                            <div class="table-wrap">
                            <table class="data" id="topic-groups">
                                <thead><tr><th>"Group"</th><th>"Verdict"</th><th>"Lag on this topic"</th><th>"Group lag"</th><th>"State"</th><th>"Why"</th></tr></thead>
                                <tbody>
                                {list.into_iter().map(|g| {
                                    let on_topic: i64 = g.verdicts.iter().filter(|v| v.topic == name).filter_map(|v| v.lag).sum();
                                    view! {
                                        <tr data-group=g.group.clone()>
                                            <td><a href=format!("/kafka/{t}/groups/{}", query_value(&g.group))>{g.group.clone()}</a></td>
                                            <td><span class=status_class(&g.status)>{g.status.clone()}</span></td>
                                            <td class="num">{fmt_num(on_topic as f64)}</td>
                                            <td class="num">{g.lag_text(fmt_lag)}</td>
                                            <td>{g.state.clone()}</td>
                                            <td class="reason">{g.reason.clone()}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}
