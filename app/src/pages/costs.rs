//! The weekly LLM cost review: a week against the one before, why the cost changed (volume,
//! mix, price, cache, tokens per call — adding up to the change), the 13-week trend, a
//! breakdown by any dimension with drill-down (service → feature → model), and the most
//! expensive traces. Server-rendered from the hourly rollups; reads the same without
//! JavaScript (the week picker and the breakdown selector are plain GET forms).

use crate::components::charts::{BarChart, fmt_count};
use crate::components::common::raw_element_text;
use crate::components::common::{EmptyState, ErrorPanel, Loading, query_value};
use crate::components::sortable::SortableTable;
use crate::components::time::LocalTime;
use crate::cost_fns::{
    ChangeLlmPrice, CreateLlmBudget, ImportLlmUsage, SaveWeekReview, change_llm_price, llm_budgets,
    llm_prices, llm_trace_calls, week_review_record, weekly_cost_review,
};
use domain::costs::{CostReview, DIMENSIONS, PriceChangeResult, PriceView};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// The next dimension to break down by after filtering on `by` (service → feature → model).
fn drill_next(by: &str) -> &'static str {
    match by {
        "service" => "feature",
        "feature" => "model",
        "provider" => "model",
        "tenant" => "service",
        "operation" => "model",
        _ => "service",
    }
}

/// The week's record: notes, reviewed by whom and when, and the form to write them.
#[component]
fn ReviewRecord(week: String) -> impl IntoView {
    let save = ServerAction::<SaveWeekReview>::new();
    let w = week.clone();
    let record = Resource::new(
        move || (w.clone(), save.version().get()),
        |(w, _)| week_review_record(w),
    );
    view! {
        <section class="panel review-record" id="review">
            <h2>"Review"</h2>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match record.await {
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                        Ok(r) => {
                            let when = r.reviewed_at.as_deref().and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
                            view! {
                                <p class="status">
                                    {match (r.reviewed_by.clone(), when) {
                                        (Some(by), Some(at)) => view! { <span class="badge ok">"Reviewed"</span>" by "{by}" · "<LocalTime at/> }.into_any(),
                                        _ => view! { <span class="badge">"Not reviewed yet"</span> }.into_any(),
                                    }}
                                </p>
                                {if r.can_edit {
                                    view! {
                                        <ActionForm action=save attr:class="stack" attr:id="review-form">
                                            <input type="hidden" name="week" value=r.week.clone()/>
                                            <label>"Notes on the week (Markdown)"
                                                <textarea name="notes" rows="6" maxlength="20000">{raw_element_text(&r.notes)}</textarea>
                                            </label>
                                            <label class="check"><input type="checkbox" name="reviewed" value="1" checked=r.reviewed_by.is_some()/>" The week is reviewed"</label>
                                            <button type="submit" class="primary">"Save the review"</button>
                                        </ActionForm>
                                    }.into_any()
                                } else {
                                    view! { <pre class="notes">{r.notes.clone()}</pre> }.into_any()
                                }}
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The budgets: this period's spend and forecast against each, what was raised, and the form
/// to add one.
#[component]
fn Budgets() -> impl IntoView {
    let create = ServerAction::<CreateLlmBudget>::new();
    let list = Resource::new(move || create.version().get(), |_| llm_budgets());
    view! {
        <section class="budgets" id="budgets">
            <h2>"Budgets"</h2>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match list.await {
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted">"No budgets yet. A budget per service, feature or tenant, weekly or monthly, opens an incident (or adds a finding to the open one) when 80% and 100% of it are spent or forecast."</p>
                        }.into_any(),
                        Ok(list) => {
                            let columns = ["Scope", "Name", "Period from", "Budget", "Spent", "Spent %", "Forecast", "Forecast %", "Raised"]
                                .iter().map(|s| s.to_string()).collect();
                            let rows = list.iter().map(|b| vec![
                                b.scope.clone(),
                                b.name.clone(),
                                format!("{} ({})", b.period_start, b.period),
                                b.amount.clone(),
                                b.spent.clone(),
                                format!("{:.1}%", b.spent_percent),
                                b.forecast.clone().unwrap_or_else(|| "—".into()),
                                b.forecast_percent.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "—".into()),
                                b.raised.iter().map(|t| format!("{t}%")).collect::<Vec<_>>().join(", "),
                            ]).collect();
                            view! { <SortableTable caption="This period, per budget" columns rows/> }.into_any()
                        }
                    }
                })}
            </Suspense>
            <details>
                <summary>"Add a budget (approvers)"</summary>
                <ActionForm action=create attr:class="inline budget-form" attr:id="budget-form">
                    <label>"Scope "<select name="scope"><option value="service">"service"</option><option value="feature">"feature"</option><option value="tenant">"tenant"</option></select></label>
                    <label>"Name "<input type="text" name="name" required maxlength="200" placeholder="checkout"/></label>
                    <label>"Period "<select name="period"><option value="week">"week"</option><option value="month">"month"</option></select></label>
                    <label>"Amount ($) "<input type="text" name="amount" required inputmode="decimal" placeholder="250"/></label>
                    <button type="submit">"Add"</button>
                </ActionForm>
                {move || create.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorPanel error=e/> })}
            </details>
        </section>
    }
}

/// Usage records from a file (JSON Lines or CSV, docs/llm-costs.md), pasted into the form.
#[component]
fn Import() -> impl IntoView {
    let import = ServerAction::<ImportLlmUsage>::new();
    view! {
        <details class="import" id="import">
            <summary>"Import usage records (approvers)"</summary>
            <ActionForm action=import attr:class="stack" attr:id="import-form">
                <label>"Format "<select name="format"><option value="jsonl">"JSON Lines"</option><option value="csv">"CSV (with a header line)"</option></select></label>
                <label>"Records (the fields are in docs/llm-costs.md; every line is checked before anything is stored)"
                    <textarea name="data" rows="6" required class="code" placeholder=r#"{"id": "r1", "started_at": "2026-11-23T10:00:00Z", "provider": "openai", "model": "gpt-4.1", "input_tokens": 2006, "cache_read_tokens": 1920, "output_tokens": 300}"#></textarea>
                </label>
                <button type="submit">"Import"</button>
            </ActionForm>
            {move || import.value().get().map(|r| match r {
                Ok(msg) => view! { <p class="notice" role="status">{msg}</p> }.into_any(),
                Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
            })}
        </details>
    }
}

/// The page's URL for `week`, `by` and the filters (in a fixed order).
fn href(week: &str, by: &str, filters: &[(String, String)]) -> String {
    let mut s = format!("/costs?week={}&by={}", query_value(week), query_value(by));
    for (k, v) in filters {
        s.push_str(&format!("&{}={}", query_value(k), query_value(v)));
    }
    s
}

fn review_view(r: CostReview) -> impl IntoView {
    let no_calls = r.cur.calls == 0 && r.prev.calls == 0;
    let week = r.week.clone();
    let by = r.by.clone();
    let filters = r.filters.clone();
    let trend_labels: Vec<String> = r.trend.iter().map(|p| p.week.clone()).collect();
    let trend_values: Vec<f64> = r.trend.iter().map(|p| p.cost_usd).collect();
    let trend_hrefs: Vec<String> = r
        .trend
        .iter()
        .map(|p| href(&p.week, &by, &filters))
        .collect();
    let trend_texts: Vec<String> = r
        .trend
        .iter()
        .map(|p| {
            format!(
                "{} over {} calls{}",
                p.cost,
                fmt_count(p.calls),
                if p.unpriced_calls > 0 {
                    format!(" ({} unpriced)", fmt_count(p.unpriced_calls))
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let current = r.trend.iter().position(|p| p.week == r.week);
    let next_by = drill_next(&by);
    let columns: Vec<String> = [
        by.as_str(),
        "Cost",
        "Last week",
        "Change",
        "Calls",
        "Cost per call",
        "Input",
        "Cache read",
        "Cache write",
        "Output",
        "Reasoning",
        "Unpriced calls",
        "Failed calls",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|x| {
            vec![
                x.key.clone(),
                x.cur.cost.clone(),
                x.prev.cost.clone(),
                x.change.clone(),
                fmt_count(x.cur.calls),
                x.cost_per_call.clone(),
                fmt_count(x.cur.input),
                fmt_count(x.cur.cache_read),
                fmt_count(x.cur.cache_write),
                fmt_count(x.cur.output),
                fmt_count(x.cur.reasoning),
                fmt_count(x.cur.unpriced_calls),
                fmt_count(x.cur.failed_calls),
            ]
        })
        .collect();
    let drill: Vec<(String, String)> = r
        .rows
        .iter()
        .filter(|_| !filters.iter().any(|(k, _)| *k == by))
        .map(|x| {
            let mut f = filters.clone();
            f.push((by.clone(), x.key.clone()));
            (x.key.clone(), href(&week, next_by, &f))
        })
        .collect();
    let o = r.overall.clone();
    let mut export_q = format!("week={}&by={}", query_value(&week), query_value(&by));
    for (k, v) in &filters {
        export_q.push_str(&format!("&{}={}", query_value(k), query_value(v)));
    }
    view! {
        <p class="exports">"Export: "
            <a href=format!("/api/v1/llm/review/markdown?{export_q}") download>"Markdown (with the notes)"</a>" · "
            <a href=format!("/api/v1/llm/review/csv?{export_q}") download>"CSV (every token bucket, the price version)"</a>
        </p>
        {(!r.filters.is_empty()).then(|| view! {
            <p class="crumbs">"Filtered: "
                {r.filters.iter().map(|(k, v)| view! { <span class="badge">{format!("{k} = {v}")}</span> " " }).collect_view()}
                <a href=href(&week, "service", &[])>"clear"</a>
            </p>
        })}
        <section class="cards">
            <div class="card"><h3>"Cost"</h3><p class="big">{r.cur.cost.clone()}</p>
                <p class="muted">{format!("{} in {}", r.prev.cost, r.prev_week)}</p></div>
            <div class="card"><h3>"Calls"</h3><p class="big">{fmt_count(r.cur.calls)}</p>
                <p class="muted">{format!("{} in {}", fmt_count(r.prev.calls), r.prev_week)}</p></div>
            <div class="card"><h3>"Unpriced calls"</h3><p class="big">{fmt_count(r.cur.unpriced_calls)}</p>
                <p class="muted">"no price applies: not in the cost, never counted as $0"</p></div>
            <div class="card"><h3>"Cache savings"</h3><p class="big">{r.cur.cache_savings.clone()}</p>
                <p class="muted">"cache reads against the uncached input price"</p></div>
            <div class="card"><h3>"Failed attempts"</h3><p class="big">{r.cur.failed_cost.clone()}</p>
                <p class="muted">{format!("{} calls that errored or fell back", fmt_count(r.cur.failed_calls))}</p></div>
        </section>
        {if no_calls {
            view! {
                <EmptyState title="No LLM calls in these two weeks"
                    what="Send GenAI spans over OTLP (/v1/traces with an ingest token): every call with gen_ai.operation.name becomes a usage record, priced on arrival."
                    status="Nothing to review for this week."/>
            }.into_any()
        } else {
            view! {
                <section class="explain">
                    <h2>"Why it changed"</h2>
                    <p class="sentence">{o.sentence.clone()}</p>
                    <table class="data effects">
                        <caption>"The change split into effects that add up to it (docs/llm-costs.md)"</caption>
                        <thead><tr><th>"Scope"</th><th>"Volume"</th><th>"Mix"</th><th>"Price"</th><th>"Cache"</th><th>"Tokens per call"</th><th>"Total"</th></tr></thead>
                        <tbody>
                            {std::iter::once(o.clone()).chain(r.services.iter().cloned()).map(|c| view! {
                                <tr><td>{c.scope}</td><td data-label="Volume">{c.volume}</td><td data-label="Mix">{c.mix}</td><td data-label="Price">{c.price}</td>
                                    <td data-label="Cache">{c.cache}</td><td data-label="Tokens per call">{c.tokens}</td><td data-label="Total"><strong>{c.total}</strong></td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    <ul class="sentences">
                        {r.services.iter().map(|c| view! { <li>{c.sentence.clone()}</li> }).collect_view()}
                    </ul>
                </section>
                <BarChart title="Cost per week, the last 13 weeks" labels=trend_labels values=trend_values
                    hrefs=trend_hrefs texts=trend_texts unit="USD, priced calls" highlight=current/>
                <section>
                    <h2>{format!("By {by}")}</h2>
                    <SortableTable caption=format!("{} against {}", r.week, r.prev_week) columns rows/>
                    {(!drill.is_empty()).then(|| view! {
                        <p class="drill">{format!("Drill down ({by} → {next_by}): ")}
                            {drill.into_iter().map(|(k, h)| view! { <a href=h>{k}</a> " · " }).collect_view()}
                        </p>
                    })}
                </section>
                {(!r.fallbacks.is_empty()).then(|| {
                    let columns = ["Feature", "Requests", "Fell back", "Share", "Chains", "Failed attempts", "Pricier fallback", "Fallback tax"]
                        .iter().map(|s| s.to_string()).collect();
                    let rows = r.fallbacks.iter().map(|f| vec![
                        f.feature.clone(),
                        fmt_count(f.requests),
                        fmt_count(f.fell_back),
                        format!("{:.1}%", f.share),
                        f.chains.join("; "),
                        f.failed_cost.clone(),
                        f.pricier_cost.clone(),
                        f.tax.clone(),
                    ]).collect();
                    view! {
                        <section class="fallbacks">
                            <h2>"Fallbacks"</h2>
                            <p class="muted">"Requests whose first attempt failed and another model answered; the tax is what the failed attempts were billed plus what the fallback cost above the first choice's price."</p>
                            <SortableTable caption="Per feature, this week" columns rows/>
                        </section>
                    }
                })}
                {(!r.top_traces.is_empty()).then(|| view! {
                    <section>
                        <h2>"Most expensive traces"</h2>
                        <table class="data top-traces">
                            <thead><tr><th>"Trace"</th><th>"Service"</th><th>"LLM calls"</th><th>"Cost"</th></tr></thead>
                            <tbody>
                                {r.top_traces.iter().map(|t| view! {
                                    <tr><td><a href=format!("/costs/traces/{}", t.trace_id)><code>{t.trace_id.clone()}</code></a></td><td data-label="Service">{t.service.clone()}</td><td data-label="LLM calls">{fmt_count(t.calls)}</td><td data-label="Cost">{t.cost.clone()}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                })}
            }.into_any()
        }}
    }
}

#[component]
pub fn CostsPage() -> impl IntoView {
    let q = use_query_map();
    let get = move |k: &str| q.read().get(k).filter(|s| !s.is_empty());
    let review = Resource::new(
        move || {
            (
                get("week"),
                get("by"),
                [
                    get("provider"),
                    get("model"),
                    get("service"),
                    get("feature"),
                    get("tenant"),
                    get("operation"),
                ],
            )
        },
        |(week, by, [p, m, s, f, t, o])| weekly_cost_review(week, by, p, m, s, f, t, o),
    );
    view! {
        <Title text="LLM costs"/>
        <h1>"LLM costs"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match review.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(r) => {
                        let by = r.by.clone();
                        let filters = r.filters.clone();
                        view! {
                            <form method="get" action="/costs" class="toolbar">
                                <label>"Week "<input type="week" name="week" value=r.week.clone() required/></label>
                                <label>" by "
                                    <select name="by">
                                        {DIMENSIONS.iter().map(|d| view! { <option value=*d selected=*d == by>{*d}</option> }).collect_view()}
                                    </select>
                                </label>
                                {filters.iter().map(|(k, v)| view! { <input type="hidden" name=k.clone() value=v.clone()/> }).collect_view()}
                                " " <button type="submit">"Show"</button>
                                " " <a href=href(&r.prev_week, &by, &filters)>{format!("← {}", r.prev_week)}</a>
                                <span class="muted">{format!(" · {} to {} ({})", &r.from[..10.min(r.from.len())], &r.to[..10.min(r.to.len())], r.zone)}</span>
                                " · " <a href="/costs/prices">"Price book"</a>
                            </form>
                            {review_view(r.clone())}
                            <Budgets/>
                            <Import/>
                            <ReviewRecord week=r.week.clone()/>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// One trace's LLM calls: what each attempt was, what it cost, the usage as received.
#[component]
pub fn CostTracePage() -> impl IntoView {
    let params = use_params_map();
    let trace = move || params.read().get("trace").unwrap_or_default();
    let calls = Resource::new(trace, llm_trace_calls);
    view! {
        <Title text="LLM calls of a trace"/>
        <p class="crumbs"><a href="/costs">"LLM costs"</a>" › trace"</p>
        <h1>"LLM calls of trace " <code>{trace}</code></h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match calls.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(list) => {
                        let parse = |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok();
                        view! {
                            <div class="table-wrap">
                            <table class="data trace-calls">
                                <caption>{format!("{} calls, in start order", list.len())}</caption>
                                <thead><tr>
                                    <th>"Started"</th><th>"Span"</th><th>"Service"</th><th>"Feature"</th><th>"Tenant"</th><th>"Model"</th>
                                    <th>"Operation"</th><th>"Status"</th><th>"Duration"</th><th>"Input"</th><th>"Cache read"</th>
                                    <th>"Cache write"</th><th>"Output"</th><th>"Reasoning"</th><th>"Cost"</th><th>"Price version"</th>
                                </tr></thead>
                                <tbody>
                                    {list.iter().map(|c| view! {
                                        <tr>
                                            <td data-label="Started">{parse(&c.started_at).map(|at| view! { <LocalTime at/> })}</td>
                                            <td data-label="Span"><code>{c.span_id.clone()}</code></td>
                                            <td data-label="Service">{c.service.clone()}</td>
                                            <td data-label="Feature">{c.feature.clone()}</td>
                                            <td data-label="Tenant">{c.tenant.clone()}</td>
                                            <td data-label="Model">{format!("{} {}", c.provider, c.model)}</td>
                                            <td data-label="Operation">{c.operation.clone()}</td>
                                            <td data-label="Status">{match &c.error_type { Some(e) => format!("{} ({e})", c.status), None => c.status.clone() }}</td>
                                            <td data-label="Duration">{format!("{:.0} ms", c.duration_ms)}</td>
                                            <td data-label="Input">{fmt_count(c.input)}</td>
                                            <td data-label="Cache read">{fmt_count(c.cache_read)}</td>
                                            <td data-label="Cache write">{fmt_count(c.cache_write)}</td>
                                            <td data-label="Output">{fmt_count(c.output)}</td>
                                            <td data-label="Reasoning">{fmt_count(c.reasoning)}</td>
                                            <td data-label="Cost">{if c.cost.is_empty() { "unpriced".to_string() } else { c.cost.clone() }}</td>
                                            <td data-label="Price version">{c.price_version.map(|p| format!("#{p}")).unwrap_or_default()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                            <details><summary>"The usage as received"</summary>
                                <ul class="plain">{list.iter().map(|c| view! { <li><code>{c.span_id.clone()}</code>" "<code>{c.raw_usage.clone()}</code></li> }).collect_view()}</ul>
                            </details>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// The fields of a price change, in the form's order: (query and form name, label, hint).
const PRICE_FIELDS: [(&str, &str, &str); 13] = [
    (
        "retire",
        "Replaces price #",
        "the row this change retires (empty: adds only)",
    ),
    (
        "provider",
        "Provider",
        "openai, anthropic, gcp.gemini, deepseek, …",
    ),
    ("model", "Model", "exact name, or a pattern ending in *"),
    (
        "service_tier",
        "Service tier",
        "default, batch, flex or priority",
    ),
    (
        "min_prompt_tokens",
        "From prompt tokens",
        "a context tier: applies above this many",
    ),
    (
        "effective_from",
        "Effective from",
        "2026-12-01 or an RFC 3339 time",
    ),
    ("input", "Input $/M", "required"),
    ("cache_read", "Cache read $/M", "empty: the input price"),
    (
        "cache_write_5m",
        "Cache write 5 min $/M",
        "empty: the input price",
    ),
    (
        "cache_write_1h",
        "Cache write 1 h $/M",
        "empty: the 5-minute price",
    ),
    ("output", "Output $/M", "required"),
    ("reasoning", "Reasoning $/M", "empty: the output price"),
    (
        "source",
        "Source",
        "where the price comes from (a URL, a contract)",
    ),
];

/// Rows of the price book per page.
const PRICES_PER_PAGE: usize = 50;

/// `/costs/prices?…` with `pairs` (empty values left out).
fn prices_href(pairs: &[(&str, String)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", query_value(k), query_value(v)))
        .collect();
    if q.is_empty() {
        "/costs/prices".into()
    } else {
        format!("/costs/prices?{}", q.join("&"))
    }
}

/// A price row's values as the change form's fields, replacing it.
fn edit_pairs(p: &PriceView) -> Vec<(&'static str, String)> {
    vec![
        ("retire", p.id.to_string()),
        ("provider", p.provider.clone()),
        ("model", p.model.clone()),
        ("service_tier", p.service_tier.clone()),
        ("min_prompt_tokens", p.min_prompt_tokens.to_string()),
        (
            "effective_from",
            p.effective_from.chars().take(10).collect(),
        ),
        ("input", p.input.clone()),
        ("cache_read", p.cache_read.clone().unwrap_or_default()),
        (
            "cache_write_5m",
            p.cache_write_5m.clone().unwrap_or_default(),
        ),
        (
            "cache_write_1h",
            p.cache_write_1h.clone().unwrap_or_default(),
        ),
        ("output", p.output.clone()),
        ("reasoning", p.reasoning.clone().unwrap_or_default()),
        ("source", p.source.clone()),
    ]
}

/// A price's source: a web address as a link named by its host (the whole text on hover),
/// anything else as text.
fn source_view(source: &str) -> impl IntoView + use<> {
    let url = source.split_whitespace().next().unwrap_or_default();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split('/').next())
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    match host {
        Some(h) => {
            view! { <a href=url.to_string() title=source.to_string() rel="noreferrer">{h}</a> }
                .into_any()
        }
        None => view! { <span>{source.to_string()}</span> }.into_any(),
    }
}

/// What a change re-prices: per week and model, before and after.
fn diff_view(r: &PriceChangeResult) -> impl IntoView + use<> {
    let d = r.diff.clone();
    let columns = ["Week", "Model", "Records", "Before", "After", "Change"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows = d
        .rows
        .iter()
        .map(|x| {
            vec![
                x.week.clone(),
                x.model.clone(),
                fmt_count(x.records),
                x.before.clone(),
                x.after.clone(),
                x.change.clone(),
            ]
        })
        .collect();
    view! {
        <p class="sentence">
            {format!(
                "{} stored records change price: {} → {} ({}); {} become priced, {} unpriced.",
                fmt_count(d.records), d.cost_before, d.cost_after, d.change,
                fmt_count(d.newly_priced), fmt_count(d.newly_unpriced)
            )}
        </p>
        {(!d.rows.is_empty()).then(|| view! { <SortableTable caption="Re-priced, per week and model" columns rows/> })}
    }
}

/// The price book: every price with its effective date, tiers, source and the records it
/// priced; an admin changes one in two steps — the form shows what the change re-prices
/// (a dry run: a plain GET, so it works without JavaScript), then applies it.
#[component]
pub fn PricesPage() -> impl IntoView {
    let q = use_query_map();
    let get = move |k: &str| q.read().get(k).unwrap_or_default();
    let apply = ServerAction::<ChangeLlmPrice>::new();
    let prices = Resource::new(
        move || (get("retired"), apply.version().get()),
        |(r, _)| llm_prices(Some(r)),
    );
    let fields = move || PRICE_FIELDS.map(|(k, _, _)| get(k));
    let preview = Resource::new(
        move || (get("preview"), fields()),
        |(p, [re, pr, mo, ti, mi, ef, inp, cr, c5, c1, out, rs, so])| async move {
            if p.is_empty() {
                return None;
            }
            let s = |v: String| Some(v);
            Some(
                change_llm_price(
                    s(re),
                    s(pr),
                    s(mo),
                    s(ti),
                    s(mi),
                    s(ef),
                    s(inp),
                    s(cr),
                    s(c5),
                    s(c1),
                    s(out),
                    s(rs),
                    s(so),
                    None,
                )
                .await,
            )
        },
    );
    view! {
        <Title text="LLM price book"/>
        <p class="crumbs"><a href="/costs">"LLM costs"</a>" › price book"</p>
        <h1>"LLM price book"</h1>
        <p class="muted">
            "Dollars per million tokens. A price applies from its date until the next one for the same model, tier and context tier; changing one re-prices the records it covers, and the version it replaces stays listed (with the records it priced). "
            <a href="/api/v1/llm/prices/litellm">"Export in LiteLLM's format"</a>" · docs/llm-costs.md"
        </p>
        {move || (!get("applied").is_empty()).then(|| {
            let n = |k: &str| get(k).parse::<usize>().unwrap_or(0);
            view! { <p class="notice ok" role="status">{format!("Applied: {} added, {} retired; the records the change covers are re-priced.", n("added"), n("retired"))}</p> }
        })}
        // Applied, the server sends the browser to the book with the counts (above); a refusal
        // is shown here.
        {move || apply.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorPanel error=e/> })}
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match preview.await {
                    None => ().into_any(),
                    Some(Err(e)) => view! { <section class="panel preview"><h2>"The change"</h2><ErrorPanel error=e/></section> }.into_any(),
                    Some(Ok(r)) => {
                        let values = fields();
                        view! {
                            <section class="panel preview" id="preview">
                                <h2>"What the change re-prices"</h2>
                                {diff_view(&r)}
                                <ActionForm action=apply attr:class="inline" attr:id="apply-form">
                                    {PRICE_FIELDS.iter().zip(values).map(|((k, _, _), v)| view! { <input type="hidden" name=*k value=v/> }).collect_view()}
                                    <input type="hidden" name="apply" value="1"/>
                                    <button type="submit" class="primary">"Apply this change"</button>
                                    " " <a href="/costs/prices">"Cancel"</a>
                                </ActionForm>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
        <section class="panel" id="change">
            <h2>"Change a price (admins)"</h2>
            <p class="muted">"Fill in a new price, or use Edit on a row (the change replaces it) or Retire. Preview shows what it re-prices before anything is written."</p>
            <form method="get" action="/costs/prices" class="price-form">
                <input type="hidden" name="preview" value="1"/>
                <div class="param-grid">
                    {move || PRICE_FIELDS.iter().map(|(k, label, hint)| {
                        let v = get(k);
                        view! { <label>{*label}<input type="text" name=*k value=v placeholder=*hint maxlength="300"/></label> }
                    }).collect_view()}
                </div>
                <p><button type="submit">"Preview the change"</button></p>
            </form>
        </section>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match prices.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <EmptyState title="No prices" what="Prices per provider and model, with the dates they apply from." status="Import LiteLLM's file or add a price above; until then every record is unpriced."/> }.into_any(),
                    Ok(list) => {
                        let retired = !get("retired").is_empty();
                        let total = list.len();
                        let pages = total.div_ceil(PRICES_PER_PAGE).max(1);
                        let page = get("page").parse::<usize>().unwrap_or(1).clamp(1, pages);
                        let shown: Vec<PriceView> = list.into_iter().skip((page - 1) * PRICES_PER_PAGE).take(PRICES_PER_PAGE).collect();
                        let columns = ["#", "Provider", "Model", "Tier", "From prompt tokens", "Effective from", "Input", "Cache read", "Cache write 5m", "Cache write 1h", "Output", "Reasoning", "Records", "Source", ""];
                        let page_href = move |n: usize| prices_href(&[("retired", if retired { "1".into() } else { String::new() }), ("page", n.to_string())]);
                        view! {
                            <section id="prices">
                                <p class="toolbar">
                                    {if retired {
                                        view! { <a href="/costs/prices">"Live prices only"</a> }.into_any()
                                    } else {
                                        view! { <a href="/costs/prices?retired=1#prices">"Show retired versions too"</a> }.into_any()
                                    }}
                                    <span class="muted">{format!(" · {total} rows")}</span>
                                </p>
                                <div class="table-wrap">
                                <table class="data evidence sortable prices">
                                    <caption>{if retired { "Every version" } else { "Live prices" }}</caption>
                                    <thead><tr>{columns.iter().map(|c| view! { <th><button type="button" class="sort">{*c}<span class="mark"></span></button></th> }).collect_view()}</tr></thead>
                                    <tbody>
                                        {shown.iter().map(|p| {
                                            let edit = prices_href(&edit_pairs(p));
                                            let retire = prices_href(&[("retire", p.id.to_string()), ("preview", "1".into())]);
                                            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
                                            let live = p.retired_at.is_none();
                                            view! {
                                                <tr class:retired=!live>
                                                    <td data-label="#">{p.id}</td>
                                                    <td data-label="Provider">{p.provider.clone()}</td>
                                                    <td data-label="Model"><code>{p.model.clone()}</code></td>
                                                    <td data-label="Tier">{p.service_tier.clone()}</td>
                                                    <td data-label="From prompt tokens">{fmt_count(p.min_prompt_tokens)}</td>
                                                    <td data-label="Effective from">{p.effective_from.chars().take(10).collect::<String>()}</td>
                                                    <td data-label="Input">{p.input.clone()}</td>
                                                    <td data-label="Cache read">{dash(&p.cache_read)}</td>
                                                    <td data-label="Cache write 5m">{dash(&p.cache_write_5m)}</td>
                                                    <td data-label="Cache write 1h">{dash(&p.cache_write_1h)}</td>
                                                    <td data-label="Output">{p.output.clone()}</td>
                                                    <td data-label="Reasoning">{dash(&p.reasoning)}</td>
                                                    <td data-label="Records">{fmt_count(p.records)}</td>
                                                    <td data-label="Source" class="source">{source_view(&p.source)}</td>
                                                    <td data-label="">
                                                        {if live {
                                                            view! { <a href=format!("{edit}#change")>"Edit"</a>" · "<a href=format!("{retire}#preview")>"Retire"</a> }.into_any()
                                                        } else {
                                                            view! { <span class="muted">"retired"</span> }.into_any()
                                                        }}
                                                    </td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                </div>
                                {(pages > 1).then(|| view! {
                                    <nav class="pager" aria-label="Pages">
                                        {(1..=pages).map(|n| if n == page {
                                            view! { <strong>{n}</strong>" " }.into_any()
                                        } else {
                                            view! { <a href=page_href(n)>{n}</a>" " }.into_any()
                                        }).collect_view()}
                                    </nav>
                                })}
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
