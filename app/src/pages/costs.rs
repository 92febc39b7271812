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
    CreateLlmBudget, ImportLlmUsage, SaveWeekReview, llm_budgets, llm_trace_calls,
    week_review_record, weekly_cost_review,
};
use domain::costs::{CostReview, DIMENSIONS};
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
