//! Deployment checklists in the browser: the deployments list (filters, keyset paging), the
//! form that opens a deployment (with a preview of what its template will check and on which
//! target bindings), the deployment page (items by section with their controls, metric
//! measurements charted against their threshold, sign-off, the record; live while anything
//! runs), and the templates (each version, a diff between versions, the YAML editor). Pages
//! are server-rendered and work without JavaScript; the `Enhance` island sends the forms and
//! re-renders in place.

use crate::components::common::{ErrorPanel, Loading};
use crate::components::time::LocalTime;
use crate::deployment_fns::*;
use domain::deployments::{
    DeploymentDetail, DeploymentItem, DeploymentStatus, ItemKind, ItemState, Measurement,
    ParamKind, Section, Template, TemplateParam,
};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

fn status_badge(s: DeploymentStatus) -> impl IntoView {
    view! { <span class=format!("badge dstatus dstatus-{}", s.as_str())>{s.as_str()}</span> }
}

/// The deployments, newest first, with filters and paging, and the templates.
#[component]
pub fn DeploymentsPage() -> impl IntoView {
    let q = use_query_map();
    let get = move |k: &str| q.read().get(k).filter(|s| !s.is_empty());
    let templates = Resource::new(|| (), |_| list_templates());
    let deployments = Resource::new(
        move || {
            (
                get("service"),
                get("environment"),
                get("status"),
                get("before").and_then(|b| b.parse::<i64>().ok()),
            )
        },
        |(s, e, st, b)| list_deployments(s, e, st, b),
    );
    let filters = move || (get("service"), get("environment"), get("status"));
    view! {
        <Title text="Deployments"/>
        <div class="page-head">
            <h1>"Deployments"</h1>
            <a class="button primary" href="/deployments/new" id="new-deployment">"Open a deployment"</a>
        </div>
        <p class="muted" id="deployments-status">"Checklists of manual, approval, metric (Prometheus), probe and Kafka-lag items; sign-off with separation of duties; the CI gate for pipelines (docs/api.md). A deployment that goes wrong opens a linked incident in one click."</p>
        <section class="panel" id="deployments">
            <form method="get" action="/deployments" class="filters inline">
                <label>"Service " <input type="text" name="service" value=move || filters().0.unwrap_or_default()/></label>
                <label>"Environment " <input type="text" name="environment" value=move || filters().1.unwrap_or_default()/></label>
                <label>"Status "
                    <select name="status">
                        <option value="">"any"</option>
                        {move || {
                            let cur = filters().2;
                            DeploymentStatus::ALL.iter().map(|s| view! {
                                <option value=s.as_str() selected=cur.as_deref() == Some(s.as_str())>{s.as_str()}</option>
                            }).collect_view()
                        }}
                    </select>
                </label>
                <button type="submit">"Filter"</button>
            </form>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match deployments.await {
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                        Ok(page) if page.deployments.is_empty() => view! { <p class="muted">"No deployments match. Open one here, or from CI with POST /api/v1/deployments."</p> }.into_any(),
                        Ok(page) => {
                            let (s, e, st) = filters();
                            let next = page.next.map(|b| {
                                let mut qs = vec![format!("before={b}")];
                                for (k, v) in [("service", s), ("environment", e), ("status", st)] {
                                    if let Some(v) = v {
                                        qs.push(format!("{k}={}", urlencode(&v)));
                                    }
                                }
                                format!("/deployments?{}", qs.join("&"))
                            });
                            view! {
                                <div class="table-wrap">
                                <table class="data sortable" id="deployments-table">
                                    <thead><tr><th>"Key"</th><th>"Service"</th><th>"Env"</th><th>"Version"</th><th>"Status"</th><th>"Template"</th><th>"Requested by"</th><th>"Opened"</th></tr></thead>
                                    <tbody>
                                    {page.deployments.into_iter().map(|d| { let (key, href) = (d.key.clone(), format!("/deployments/{}", d.key)); view! {
                                        <tr data-key=key>
                                            <td><a href=href><strong>{d.key}</strong></a></td>
                                            <td>{d.service}</td>
                                            <td>{d.environment}</td>
                                            <td>{d.version}</td>
                                            <td>{status_badge(d.status)}</td>
                                            <td><a href=format!("/deployments/templates/{}?version={}", d.template_id, d.template_version)><code>{format!("{} v{}", d.template_id, d.template_version)}</code></a></td>
                                            <td>{d.requester}</td>
                                            <td><LocalTime at=d.created_at/></td>
                                        </tr>
                                    }}).collect_view()}
                                    </tbody>
                                </table>
                                </div>
                                {next.map(|href| view! { <p><a href=href id="older">"Older deployments →"</a></p> })}
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
        <section class="panel" id="templates">
            <div class="page-head">
                <h2>"Checklist templates"</h2>
                <a class="button" href="/deployments/templates/new" id="new-template">"New template"</a>
            </div>
            <p class="muted">"A template is YAML: sections pre, during and post of manual, metric and probe items. Every save is a new version; deployments keep the version they were opened from."</p>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match templates.await {
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No templates yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <div class="table-wrap">
                            <table class="data" id="templates-table">
                                <thead><tr><th>"Template"</th><th>"Version"</th><th>"Items"</th><th>"Description"</th><th>"Saved"</th></tr></thead>
                                <tbody>
                                {list.into_iter().map(|t| { let id = t.template_id.clone(); view! {
                                    <tr data-template=id.clone()>
                                        <td><a href=format!("/deployments/templates/{id}")><strong>{t.name}</strong></a><br/><code>{t.template_id}</code>{t.built_in.then_some(" (built in)")}</td>
                                        <td>{format!("v{}", t.latest_version)}</td>
                                        <td>{t.items}</td>
                                        <td>{t.description}</td>
                                        <td><LocalTime at=t.updated_at/>{format!(" by {}", t.updated_by)}</td>
                                    </tr>
                                }}).collect_view()}
                                </tbody>
                            </table>
                            </div>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The target bindings a template's automated items need, with the kind of target each.
fn bindings_of(t: &Template) -> Vec<(String, String)> {
    let mut b: Vec<(String, String)> = Section::ALL
        .iter()
        .flat_map(|s| t.spec.sections.section(*s).iter())
        .filter_map(|i| i.binding().map(|(b, k)| (b.to_string(), k.to_string())))
        .collect();
    b.sort();
    b.dedup();
    b
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a template's items check: for the form's preview and the template page.
#[component]
fn TemplateItems(t: Template) -> impl IntoView {
    let bindings = bindings_of(&t);
    let params = t.spec.parameters.clone();
    view! {
        <div class="template-items">
            {(!params.is_empty()).then(|| view! {
                <table id="template-parameters" class="compact">
                    <caption>"Parameters (chosen when a deployment is opened; filled in wherever "<code>"{{name}}"</code>" appears)"</caption>
                    <thead><tr><th scope="col">"Name"</th><th scope="col">"Type"</th><th scope="col">"Default"</th><th scope="col">"What it is"</th></tr></thead>
                    <tbody>
                        {params.into_iter().map(|p| view! {
                            <tr data-param=p.name.clone()>
                                <td><code>{p.name.clone()}</code></td>
                                <td>{p.kind.as_str()}{range(&p)}</td>
                                <td><code>{p.default.clone()}</code></td>
                                <td>{p.description.clone()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {(!bindings.is_empty()).then(|| view! {
                <p id="bindings">"Target bindings to give: "
                    {bindings.iter().map(|(b, k)| view! { <code>{b.clone()}</code>{format!(" (a {k} target) ")} }).collect_view()}
                </p>
            })}
            {Section::ALL.into_iter().map(|s| {
                let items = t.spec.sections.section(s).to_vec();
                view! {
                    <h3>{format!("{} ({})", s.as_str(), items.len())}</h3>
                    <ul class="plain items-preview">
                        {items.into_iter().map(|i| view! {
                            <li data-item=i.id.clone()>
                                <span class=format!("badge kind kind-{}", i.kind.as_str())>{i.kind.as_str()}</span>" "
                                <code>{i.id.clone()}</code>" "{i.text.clone()}
                                {(!i.required).then_some(" (optional)")}
                                {i.kafka_lag.map(|k| view! {
                                    <div class="muted lag-spec">
                                        {format!("consumer group {} on binding {} no worse than {} for {} s (the Kafka sampler's verdicts)", k.group, k.target, k.max_state.to_ascii_uppercase(), k.duration_secs)}
                                    </div>
                                })}
                                {i.probe.map(|p| view! {
                                    <div class="muted probe-spec">
                                        {format!("the {} probe on binding {} — fails on a finding at or above {}{}", p.probe, p.target, p.max_severity,
                                            if p.codes.is_empty() { String::new() } else { format!(" among {}", p.codes.join(", ")) })}
                                    </div>
                                })}
                                {i.metric.map(|m| view! {
                                    <div class="muted metric-spec">
                                        {format!("on {} every {} s × {}: ", m.target, m.interval_secs, m.count)}
                                        <code>{m.query}</code>" — pass: "<code>{m.success}</code>
                                        {m.failure.map(|f| view! { " fail: "<code>{f}</code> })}
                                    </div>
                                })}
                            </li>
                        }).collect_view()}
                    </ul>
                }
            }).collect_view()}
        </div>
    }
}

/// A number parameter's bounds, as text (` ≥ 0`, ` 0–100`).
fn range(p: &TemplateParam) -> String {
    match (p.min, p.max) {
        (Some(a), Some(b)) => format!(" {a}–{b}"),
        (Some(a), None) => format!(" ≥ {a}"),
        (None, Some(b)) => format!(" ≤ {b}"),
        (None, None) => String::new(),
    }
}

/// Opens a deployment: pick a template (its items and bindings are previewed), fill in what
/// is deployed where, bind the targets.
#[component]
pub fn NewDeploymentPage() -> impl IntoView {
    let q = use_query_map();
    let chosen = move || q.read().get("template").filter(|s| !s.is_empty());
    let templates = Resource::new(|| (), |_| list_templates());
    let preview = Resource::new(chosen, |t| async move {
        match t {
            Some(id) => get_template(id, None, None).await.map(Some),
            None => Ok(None),
        }
    });
    let create = ServerAction::<CreateDeployment>::new();
    view! {
        <Title text="Open a deployment"/>
        <p class="crumbs"><a href="/deployments">"← Deployments"</a></p>
        <h1>"Open a deployment"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                let list = match templates.await {
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(l) => l,
                };
                if list.is_empty() {
                    return view! { <p class="muted">"There are no templates yet: "<a href="/deployments/templates/new">"write one"</a>" first."</p> }.into_any();
                }
                let cur = chosen();
                let pv = preview.await;
                view! {
                    <section class="panel">
                        <form method="get" action="/deployments/new" class="inline" id="template-choice">
                            <label>"Template "
                                <select name="template">
                                    {list.iter().map(|t| view! {
                                        <option value=t.template_id.clone() selected=cur.as_deref() == Some(t.template_id.as_str())>
                                            {format!("{} ({} v{})", t.name, t.template_id, t.latest_version)}
                                        </option>
                                    }).collect_view()}
                                </select>
                            </label>
                            <button type="submit">"Preview"</button>
                        </form>
                        {match pv {
                            Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                            Ok(None) => view! { <p class="muted">"Choose a template to see what it will check."</p> }.into_any(),
                            Ok(Some(p)) => {
                                let t = p.template.clone();
                                let needs = bindings_of(&t);
                                let placeholder = needs.iter().map(|(b, _)| format!("{b}: service=checkout, environment=production")).collect::<Vec<_>>().join("\n");
                                view! {
                                    <div id="preview">
                                        <h2>{format!("{} v{}", t.name, t.version)}</h2>
                                        <TemplateItems t=t.clone()/>
                                    </div>
                                    <ActionForm action=create attr:class="stack wide" attr:id="new-deployment-form">
                                        <input type="hidden" name="template" value=t.template_id.clone()/>
                                        <label>"Service" <input type="text" name="service" required maxlength="100" placeholder="checkout"/></label>
                                        <label>"Environment" <input type="text" name="environment" required maxlength="100" value="production"/></label>
                                        <label>"Version" <input type="text" name="version" required maxlength="100" placeholder="1.4.2"/></label>
                                        <label>"Change description" <textarea name="description" rows="3" maxlength="5000"></textarea></label>
                                        <label>"Commit" <input type="text" name="commit" maxlength="100" placeholder="9f2c1ab"/></label>
                                        <label>"Pipeline URL" <input type="url" name="pipeline_url" maxlength="2000" placeholder="https://ci.example/pipelines/7"/></label>
                                        {(!t.spec.parameters.is_empty()).then(|| view! {
                                            <fieldset id="parameter-inputs">
                                                <legend>"Parameters"</legend>
                                                {t.spec.parameters.iter().map(|p| view! {
                                                    <label>
                                                        <code>{p.name.clone()}</code>{format!(" ({}{})", p.kind.as_str(), range(p))}
                                                        {(!p.description.is_empty()).then(|| view! { <span class="muted">{format!(" — {}", p.description)}</span> })}
                                                        <input type="text" name=format!("parameters[{}]", p.name) value=p.default.clone() required maxlength="200"
                                                            inputmode=(p.kind == ParamKind::Number).then_some("decimal")/>
                                                    </label>
                                                }).collect_view()}
                                            </fieldset>
                                        })}
                                        {if needs.is_empty() {
                                            view! { <input type="hidden" name="targets" value=""/> }.into_any()
                                        } else {
                                            view! {
                                                <label>"Target bindings (one per line — binding: a target's name or a label selector)"
                                                    <textarea name="targets" rows=needs.len().max(2).to_string() required placeholder=placeholder></textarea>
                                                </label>
                                            }.into_any()
                                        }}
                                        <button type="submit" class="primary">"Open deployment"</button>
                                    </ActionForm>
                                }.into_any()
                            }
                        }}
                    </section>
                }.into_any()
            })}
        </Suspense>
    }
}

/// A condition's threshold (`result < 0.001` → 0.001), for the chart's line.
fn threshold(cond: &str) -> Option<f64> {
    cond.trim()
        .trim_end_matches(')')
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '='))
        .next()?
        .parse()
        .ok()
}

fn fmt_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A metric item's measurements: each value a dot coloured by its phase (several series: one
/// dot each), the success threshold as a dashed line, labelled axes.
#[component]
fn MeasurementChart(ms: Vec<Measurement>, success: String) -> impl IntoView {
    let (w, h) = (360.0, 110.0);
    let points: Vec<(usize, f64, String)> = ms
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            m.numbers()
                .into_iter()
                .map(move |v| (i, v, m.phase.clone()))
        })
        .collect();
    let line = threshold(&success);
    let hi = points
        .iter()
        .map(|p| p.1)
        .chain(line)
        .fold(f64::NEG_INFINITY, f64::max);
    let lo = points
        .iter()
        .map(|p| p.1)
        .chain(line)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let span = if hi > lo { (hi - lo) * 1.1 } else { 1.0 };
    let y = move |v: f64| h - (v - lo) / span * h;
    let n = ms.len().max(2) - 1;
    let x = move |i: usize| i as f64 / n as f64 * w;
    let first = ms.first().map(|m| m.at);
    let last = ms.last().map(|m| m.at);
    view! {
        <figure class="chart measurements">
            <svg viewBox=format!("-56 -8 {} {}", w + 64.0, h + 34.0) role="img" aria-label="measurements">
                <line x1="0" x2="0" y1="0" y2=h.to_string() class="axis"/>
                <line x1="0" x2=w.to_string() y1=h.to_string() y2=h.to_string() class="axis"/>
                <text x="-4" y="4" text-anchor="end" class="tick">{fmt_value(lo + span)}</text>
                <text x="-4" y=h.to_string() text-anchor="end" class="tick">{fmt_value(lo)}</text>
                <text x="-44" y=format!("{:.0}", h / 2.0) class="tick axis-label" transform=format!("rotate(-90 -44 {:.0})", h / 2.0)>"value"</text>
                <text x="0" y=format!("{}", h + 14.0) class="tick">"measurement 1"</text>
                <text x=w.to_string() y=format!("{}", h + 14.0) text-anchor="end" class="tick">{format!("measurement {}", ms.len())}</text>
                {line.map(|t| view! {
                    <line x1="0" x2=w.to_string() y1=format!("{:.1}", y(t)) y2=format!("{:.1}", y(t)) class="threshold"><title>{format!("threshold: {success}")}</title></line>
                    <text x=format!("{}", w - 2.0) y=format!("{:.1}", y(t) - 3.0) text-anchor="end" class="tick threshold-label">{format!("{} {}", "threshold", fmt_value(t))}</text>
                })}
                {points.into_iter().map(|(i, v, phase)| view! {
                    <circle cx=format!("{:.1}", x(i)) cy=format!("{:.1}", y(v)) r="3.5" class=format!("m m-{phase}")><title>{format!("#{} {phase}: {}", i + 1, fmt_value(v))}</title></circle>
                }).collect_view()}
            </svg>
            <figcaption class="muted">
                {first.map(|t| view! { <LocalTime at=t/> })}
                {(ms.len() > 1).then_some(" → ")}
                {last.filter(|_| ms.len() > 1).map(|t| view! { <LocalTime at=t/> })}
            </figcaption>
        </figure>
    }
}

/// One item's row: state, who, note, evidence, and the controls the viewer may use.
#[component]
fn ItemRow(
    key: String,
    i: DeploymentItem,
    open: bool,
    can_work: bool,
    can_approve: bool,
    /// An approver who is not the requester: may check approval items.
    may_sign: bool,
    /// The item's help, rendered (sanitised HTML).
    help: Option<String>,
) -> impl IntoView {
    let action = ServerAction::<ActOnDeploymentItem>::new();
    let id = i.item_id.clone();
    let manual = matches!(i.kind, ItemKind::Manual | ItemKind::Approval);
    // Who may check it: approval items only an approver who did not request the deployment.
    let can_check = if i.kind == ItemKind::Approval {
        may_sign
    } else {
        can_work
    };
    let hidden = {
        let (k, id) = (key.clone(), id.clone());
        move || view! { <input type="hidden" name="key" value=k.clone()/><input type="hidden" name="item" value=id.clone()/> }
    };
    let h2 = hidden.clone();
    let h3 = hidden.clone();
    let last = i.measurements.last().cloned();
    let (key2, id2, id3, id4) = (key.clone(), id.clone(), id.clone(), id.clone());
    view! {
        <tr data-item=id.clone() class=format!("istate-row-{}", i.state.as_str())>
            <td>
                <span class=format!("badge kind kind-{}", i.kind.as_str())>{i.kind.as_str()}</span>" "
                <code>{id.clone()}</code>" "{i.text.clone()}{(!i.required).then_some(" (optional)")}
                {help.map(|h| view! { <details class="help"><summary>"Help"</summary><div class="md" inner_html=h></div></details> })}
                {i.metric.clone().map(|m| view! {
                    <details class="metric-spec">
                        <summary>{format!("on {} — pass: {}", i.target.clone().unwrap_or_else(|| "(not bound: not run)".into()), m.success)}</summary>
                        <pre><code>{m.query.clone()}</code></pre>
                        <p class="muted">{format!("every {} s, {} measurement(s); fails past {} failed, inconclusive past {} inconclusive{}", m.interval_secs, m.count, m.failure_limit, m.inconclusive_limit, m.failure.map(|f| format!("; fail: {f}")).unwrap_or_default())}</p>
                    </details>
                })}
                {i.kafka_lag.clone().map(|k| view! {
                    <div class="muted lag-spec">
                        {format!("consumer group {} on {} no worse than {} for {} s",
                            k.group,
                            i.target.clone().unwrap_or_else(|| "(not bound: not run)".into()),
                            k.max_state.to_ascii_uppercase(),
                            k.duration_secs)}
                        {i.measurements.last().map(|m| view! { <br/>{format!("last reading: {} — {}", m.phase, m.message)}<span class="lag-readings">{format!(" ({} reading(s) this run)", i.measurements.iter().filter(|x| x.run == i.run).count())}</span> })}
                    </div>
                })}
                {i.probe.clone().map(|p| view! {
                    <div class="muted probe-spec">
                        {format!("{} probe on {} — fails on a finding at or above {}{}",
                            p.probe,
                            i.target.clone().unwrap_or_else(|| "(not bound: not run)".into()),
                            p.max_severity,
                            if p.codes.is_empty() { String::new() } else { format!(" among {}", p.codes.join(", ")) })}
                        {i.probe_run.map(|r| view! { " · " <a href=format!("/probe-runs/{r}") class="probe-run-link">{format!("probe run #{r}")}</a> })}
                    </div>
                })}
            </td>
            <td><span class=format!("badge istate istate-{}", i.state.as_str())>{i.state.as_str()}</span></td>
            <td>{i.set_by.clone().unwrap_or_default()}{i.set_at.map(|t| view! { <br/><LocalTime at=t/> })}</td>
            <td class="note">{i.note.clone().unwrap_or_default()}</td>
            <td class="controls">
                {(open && can_check && manual && i.state != ItemState::Checked).then(|| view! {
                    <ActionForm action=action attr:class="inline">
                        {hidden()}
                        <input type="hidden" name="action" value="check"/>
                        <input type="text" name="note" maxlength="2000" required=i.requires_note
                            placeholder=if i.requires_note { "note (required)" } else { "note (optional)" } aria-label="Note"/>
                        <button type="submit">"Check"</button>
                    </ActionForm>
                })}
                {(open && can_check && manual && matches!(i.state, ItemState::Checked | ItemState::Waived)).then(|| view! {
                    <ActionForm action=action attr:class="inline">
                        {h2()}
                        <input type="hidden" name="action" value="uncheck"/>
                        <button type="submit">"Uncheck"</button>
                    </ActionForm>
                })}
                {(open && can_work && !manual).then(|| view! {
                    <ActionForm action=action attr:class="inline">
                        {h3()}
                        <input type="hidden" name="action" value="rerun"/>
                        <button type="submit">{if i.run == 0 { "Run" } else { "Re-run" }}</button>
                    </ActionForm>
                })}
                {(open && can_approve && !matches!(i.state, ItemState::Waived | ItemState::Checked | ItemState::Passed)).then(|| view! {
                    <details class="waive">
                        <summary>"Waive…"</summary>
                        <ActionForm action=action attr:class="inline">
                            <input type="hidden" name="key" value=key2.clone()/>
                            <input type="hidden" name="item" value=id2.clone()/>
                            <input type="hidden" name="action" value="waive"/>
                            <input type="text" name="note" required maxlength="2000" placeholder="why it may be skipped" aria-label="Reason"/>
                            <button type="submit">"Waive"</button>
                        </ActionForm>
                    </details>
                })}
            </td>
        </tr>
        {(i.kind == ItemKind::Probe && last.as_ref().is_some_and(|m| !m.values.is_empty())).then(|| {
            let m = i.measurements.last().cloned();
            view! {
                <tr class="evidence-row" data-evidence=id4.clone()>
                    <td colspan="5">
                        <ul class="plain findings-evidence">
                            {m.map(|m| m.values.into_iter().map(|v| {
                                let code = v.labels.get("code").cloned().unwrap_or_default();
                                let sev = v.labels.get("severity").cloned().unwrap_or_default();
                                view! { <li><span class=format!("badge fsev-{sev}")>{sev.clone()}</span>" "<code>{code}</code>" "{v.value}</li> }
                            }).collect_view())}
                        </ul>
                    </td>
                </tr>
            }
        })}
        {(i.kind == ItemKind::Metric && !i.measurements.is_empty()).then(|| {
            let success = i.metric.as_ref().map(|m| m.success.clone()).unwrap_or_default();
            view! {
                <tr class="evidence-row" data-evidence=id3.clone()>
                    <td colspan="5">
                        <MeasurementChart ms=i.measurements.clone() success=success/>
                        {last.map(|m| view! { <p class="muted last-measurement">{format!("run {} · last: {} — {}", m.run, m.phase, m.message)}</p> })}
                    </td>
                </tr>
            }
        })}
    }
}

/// Buttons: (the status to move to, the label).
type Moves = Vec<(DeploymentStatus, &'static str)>;

/// The moves the deployment's status allows from here: forward, and ending it.
fn moves(s: DeploymentStatus) -> (Moves, Moves) {
    use DeploymentStatus::*;
    let forward = match s {
        Draft => vec![(AwaitingApproval, "Submit for approval")],
        Approved => vec![(InProgress, "Start the deployment")],
        InProgress => vec![(Verifying, "Deployed: verify")],
        Verifying => vec![(Done, "Done")],
        _ => vec![],
    };
    let end = match s {
        Draft | AwaitingApproval | Approved => vec![(Cancelled, "Cancel…")],
        InProgress | Verifying => vec![(RolledBack, "Roll back…")],
        _ => vec![],
    };
    (forward, end)
}

/// One deployment: what blocks it, its controls, sign-off, its items by section (with their
/// evidence) and its record. Live (re-rendered every few seconds) while an item runs.
#[component]
pub fn DeploymentPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        params
            .read()
            .get("key")
            .unwrap_or_default()
            .to_ascii_uppercase()
    };
    let q = use_query_map();
    let all = move || q.read().get("all").is_some_and(|v| v == "1");
    let data = Resource::new(move || (key(), all()), |(k, a)| get_deployment(k, Some(a)));
    view! {
        <Title text=crate::components::common::param_title(params, |p| p.get("key").unwrap_or_default().to_ascii_uppercase())/>
        <p class="crumbs"><a href="/deployments">"← Deployments"</a></p>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(p) => view! { <DeploymentView p=p/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn DeploymentView(p: DeploymentPageData) -> impl IntoView {
    let DeploymentPageData {
        detail: d,
        events,
        hidden_events,
        me,
        can_work,
        can_approve,
        incidents,
        help_html,
    } = p;
    let open_incident = ServerAction::<OpenDeploymentIncident>::new();
    let DeploymentDetail {
        deployment: dep,
        items,
        approvals,
        approvals_needed,
        approvals_given,
        blocking,
    } = d;
    let key = dep.key.clone();
    let status = dep.status;
    let went_wrong = items
        .iter()
        .any(|i| matches!(i.state, ItemState::Failed | ItemState::Inconclusive))
        || matches!(
            status,
            DeploymentStatus::InProgress
                | DeploymentStatus::Verifying
                | DeploymentStatus::RolledBack
                | DeploymentStatus::Done
        );
    let open = status.open_section();
    let live = items.iter().any(|i| i.state == ItemState::Running)
        || matches!(
            status,
            DeploymentStatus::AwaitingApproval | DeploymentStatus::InProgress
        );
    let transition = ServerAction::<DeploymentTransition>::new();
    let decide = ServerAction::<DeploymentDecide>::new();
    let (forward, end) = moves(status);
    let signed: Vec<String> = approvals
        .iter()
        .filter(|a| a.voided_at.is_none())
        .map(|a| a.approver.clone())
        .collect();
    let is_requester = me == dep.requester;
    let still = approvals_needed.saturating_sub(approvals_given);
    let who_must = if still == 0 {
        "Sign-off is complete.".to_string()
    } else {
        let mut not = vec![dep.requester.clone()];
        not.extend(signed.iter().cloned());
        not.dedup();
        format!(
            "{still} more approval(s) needed, from approvers other than {}.",
            not.join(", ")
        )
    };
    let k1 = key.clone();
    let k2 = key.clone();
    let k3 = key.clone();
    let k4 = key.clone();
    view! {
        {live.then(|| view! { <span hidden data-refresh-every="3" id="live"></span> })}
        <h1>{format!("{} · {} {} → {}", dep.key, dep.service, dep.version, dep.environment)}</h1>
        <p>
            <span class=format!("badge dstatus dstatus-{}", status.as_str()) id="deployment-status">{status.as_str()}</span>
            {format!(" · requested by {} · template ", dep.requester)}
            <a href=format!("/deployments/templates/{}?version={}", dep.template_id, dep.template_version)>{format!("{} v{}", dep.template_id, dep.template_version)}</a>
            " · " <LocalTime at=dep.created_at/>
            {dep.commit.clone().map(|c| view! { " · commit " <code>{c}</code> })}
            {dep.pipeline_url.clone().map(|u| view! { " · " <a href=u rel="noopener noreferrer">"pipeline"</a> })}
        </p>
        {(!dep.parameters.is_empty()).then(|| view! {
            <p id="parameters" class="muted">"Parameters: "
                {dep.parameters.iter().map(|(k, v)| view! { <code>{format!("{k} = {v}")}</code>" " }).collect_view()}
            </p>
        })}
        {(!dep.description.is_empty()).then(|| view! { <p>{dep.description.clone()}</p> })}
        <section class="panel" id="blocking">
            <h2>{format!("Sign-off: {approvals_given} of {approvals_needed} approvals")}</h2>
            {if blocking.is_empty() {
                view! { <p class="muted">"Nothing blocks the next step."</p> }.into_any()
            } else {
                view! { <ul class="plain blockers">{blocking.iter().cloned().map(|b| view! { <li>{b}</li> }).collect_view()}</ul> }.into_any()
            }}
            <p class="muted" id="who-must-sign">{who_must}</p>
            <ul class="plain" id="approvals">
                {approvals.iter().cloned().map(|a| view! {
                    <li class:voided=a.voided_at.is_some()>
                        <strong>{a.approver}</strong>{format!(" {} ", a.decision)}<LocalTime at=a.at/>
                        {a.reason.map(|r| format!(": {r}"))}
                        " · snapshot " <code title=a.snapshot_sha256.clone()>{a.snapshot_sha256.chars().take(12).collect::<String>()}</code>
                        {a.voided_reason.map(|r| view! { <span class="muted">{format!(" — voided: {r}")}</span> })}
                    </li>
                }).collect_view()}
            </ul>
            {(status == DeploymentStatus::AwaitingApproval && can_approve && !is_requester).then(|| view! {
                <div class="sign" id="sign">
                    <ActionForm action=decide attr:class="inline" attr:data-done="Approved.">
                        <input type="hidden" name="key" value=k1.clone()/>
                        <input type="hidden" name="decision" value="approve"/>
                        <input type="hidden" name="reason" value=""/>
                        <button type="submit" class="primary">"Approve"</button>
                    </ActionForm>
                    <details class="reject">
                        <summary>"Reject…"</summary>
                        <ActionForm action=decide attr:class="inline">
                            <input type="hidden" name="key" value=k2.clone()/>
                            <input type="hidden" name="decision" value="reject"/>
                            <input type="text" name="reason" required maxlength="2000" placeholder="why not" aria-label="Reason"/>
                            <button type="submit">"Reject"</button>
                        </ActionForm>
                    </details>
                </div>
            })}
            {(status == DeploymentStatus::AwaitingApproval && is_requester).then(|| view! {
                <p class="muted" id="own-deployment">"You requested this deployment: someone else signs it off."</p>
            })}
            {(can_work && !(forward.is_empty() && end.is_empty())).then(move || view! {
                <div class="moves" id="moves">
                    {forward.into_iter().map(|(to, label)| { let k3 = k3.clone(); view! {
                        <ActionForm action=transition attr:class="inline">
                            <input type="hidden" name="key" value=k3.clone()/>
                            <input type="hidden" name="to" value=to.as_str()/>
                            <input type="hidden" name="reason" value=""/>
                            <button type="submit" class="primary">{label}</button>
                        </ActionForm>
                    }}).collect_view()}
                    {end.into_iter().map(|(to, label)| { let k4 = k4.clone(); view! {
                        <details class="end">
                            <summary>{label}</summary>
                            <ActionForm action=transition attr:class="inline">
                                <input type="hidden" name="key" value=k4.clone()/>
                                <input type="hidden" name="to" value=to.as_str()/>
                                <input type="text" name="reason" required maxlength="2000" placeholder="why" aria-label="Reason"/>
                                <button type="submit">{label.trim_end_matches('…')}</button>
                            </ActionForm>
                        </details>
                    }}).collect_view()}
                </div>
            })}
        </section>
        {Section::ALL.into_iter().map(|s| {
            let its: Vec<_> = items.iter().filter(|i| i.section == s).cloned().collect();
            let is_open = open == Some(s);
            let key = key.clone();
            view! {
                <section class="panel" class:open-section=is_open id=format!("section-{}", s.as_str())>
                    <h2>{format!("{} ({})", s.as_str(), its.len())}{is_open.then_some(" — open now")}</h2>
                    <div class="table-wrap">
                    <table class="data items">
                        <thead><tr><th>"Item"</th><th>"State"</th><th>"By"</th><th>"Note"</th><th></th></tr></thead>
                        <tbody>
                        {its.into_iter().map(|i| view! {
                            <ItemRow key=key.clone() help=help_html.iter().find(|(id, _)| *id == i.item_id).map(|(_, h)| h.clone()) i=i open=is_open can_work=can_work can_approve=can_approve may_sign=can_approve && !is_requester/>
                        }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                </section>
            }
        }).collect_view()}
        <section class="panel" id="incidents">
            <h2>{format!("Incidents ({})", incidents.len())}</h2>
            {incidents.is_empty().then(|| view! { <p class="muted">"No incident was opened from this deployment."</p> })}
            <ul class="plain">
                {incidents.into_iter().map(|i| view! {
                    <li><a href=format!("/incidents/{}", i.key)><strong>{i.key.clone()}</strong></a>{format!(" {} · {} · {}", i.title, i.severity, i.status)}</li>
                }).collect_view()}
            </ul>
            {(can_work && went_wrong).then(|| { let k = key.clone(); view! {
                <ActionForm action=open_incident attr:class="inline" attr:id="open-incident-form">
                    <input type="hidden" name="key" value=k.clone()/>
                    <label>"Severity "
                        <select name="severity">
                            <option value="SEV1">"SEV1"</option>
                            <option value="SEV2" selected>"SEV2"</option>
                            <option value="SEV3">"SEV3"</option>
                            <option value="SEV4">"SEV4"</option>
                        </select>
                    </label>
                    <button type="submit" class="danger">"Open an incident"</button>
                </ActionForm>
                <p class="muted">"Opens an incident for this service and environment with the failed and inconclusive items as findings, linked both ways (an open one already linked is reused)."</p>
            }})}
        </section>
        <section class="panel" id="record">
            <h2>{format!("Record ({})", events.len() + hidden_events)}</h2>
            {(hidden_events > 0).then(|| view! {
                <p class="muted" id="record-window">{format!("The newest {} events; {hidden_events} older ones are not shown. ", events.len())}
                    <a href="?all=1">"Show all"</a></p>
            })}
            <div class="moves">
                <form method="post" action=format!("/api/v1/deployments/{key}/export.md") class="inline"><button type="submit">"Export Markdown"</button></form>
                <form method="post" action=format!("/api/v1/deployments/{key}/export.json") class="inline"><button type="submit">"Export JSON"</button></form>
            </div>
            <ol class="plain">
                {events.into_iter().rev().map(|(at, actor, kind, body)| view! {
                    <li class=format!("ev ev-{kind}")><LocalTime at/>{format!(" · {actor} · {kind} · ")}{body}</li>
                }).collect_view()}
            </ol>
        </section>
    }
}

/// A template at a version: what it checks, its YAML, its versions (with a diff against the
/// one before), and the editor (approvers) that saves a new version.
#[component]
pub fn TemplatePage() -> impl IntoView {
    let params = use_params_map();
    let q = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let version = move || q.read().get("version").and_then(|v| v.parse::<i32>().ok());
    let against = move || q.read().get("against").and_then(|v| v.parse::<i32>().ok());
    let data = Resource::new(
        move || (id(), version(), against()),
        |(id, v, a)| get_template(id, v, a),
    );
    let save = ServerAction::<SaveTemplate>::new();
    view! {
        <Title text=crate::components::common::param_title(params, |p| p.get("id").unwrap_or_default())/>
        <p class="crumbs"><a href="/deployments#templates">"← Templates"</a></p>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(p) => {
                        let t = p.template.clone();
                        let newest = p.versions.first().map(|v| v.0).unwrap_or(t.version);
                        let tid = t.template_id.clone();
                        view! {
                            <div class="page-head">
                                <h1>{format!("{} · v{}", t.name, t.version)}{t.built_in.then_some(" (built in)")}</h1>
                                <a class="button primary" href=format!("/deployments/new?template={}", t.template_id)>"Open a deployment from it"</a>
                            </div>
                            <p class="muted">{format!("{} · saved by {} · ", t.template_id, t.created_by)}<LocalTime at=t.created_at/>
                                {(t.version != newest).then(|| view! { " · an old version: the newest is " <a href=format!("/deployments/templates/{}", t.template_id)>{format!("v{newest}")}</a> })}
                            </p>
                            {(!t.description.is_empty()).then(|| view! { <p>{t.description.clone()}</p> })}
                            <section class="panel" id="what-it-checks">
                                <h2>"What it checks"</h2>
                                <TemplateItems t=t.clone()/>
                            </section>
                            <section class="panel" id="versions">
                                <h2>{format!("Versions ({})", p.versions.len())}</h2>
                                <ul class="plain">
                                    {p.versions.iter().map(|(v, by, at)| {
                                        let v = *v;
                                        view! {
                                            <li>
                                                <a href=format!("/deployments/templates/{tid}?version={v}")>{format!("v{v}")}</a>
                                                {format!(" by {by} · ")}<LocalTime at=*at/>
                                                {(v > 1).then(|| view! { " · " <a href=format!("/deployments/templates/{tid}?version={v}&against={}", v - 1) class="diff-link">{format!("diff from v{}", v - 1)}</a> })}
                                            </li>
                                        }
                                    }).collect_view()}
                                </ul>
                            </section>
                            {p.diff.clone().map(|(from, lines)| view! {
                                <section class="panel" id="diff">
                                    <h2>{format!("Changes from v{from} to v{}", t.version)}</h2>
                                    <pre class="diff">{lines.into_iter().map(|l| {
                                        let class = match l.op { '+' => "add", '-' => "del", _ => "same" };
                                        view! { <span class=class>{format!("{} {}\n", l.op, l.text)}</span> }
                                    }).collect_view()}</pre>
                                </section>
                            })}
                            {if p.can_edit {
                                view! {
                                    <section class="panel" id="editor">
                                        <h2>"Edit (saves a new version)"</h2>
                                        <ActionForm action=save attr:class="stack wide" attr:id="template-form">
                                            <input type="hidden" name="edit_of" value=t.template_id.clone()/>
                                            <textarea name="yaml" rows="24" spellcheck="false" class="code" aria-label="Template YAML">{crate::components::common::raw_element_text(&t.yaml)}</textarea>
                                            <button type="submit" class="primary">"Save a new version"</button>
                                        </ActionForm>
                                    </section>
                                }.into_any()
                            } else {
                                view! { <section class="panel"><h2>"YAML"</h2><pre class="code">{t.yaml.clone()}</pre></section> }.into_any()
                            }}
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

const STARTER: &str = "id: my-service-release
name: My service release
description: What this checklist is for.
sections:
  pre:
    - id: tests-green
      kind: manual
      text: All tests pass on the release commit
      requires_note: true
    - id: error-rate-before
      kind: metric
      text: Error rate below 1% before we start
      target: prometheus
      query: sum(rate(http_requests_total{service=\"{{service}}\",code=~\"5..\"}[5m])) / sum(rate(http_requests_total{service=\"{{service}}\"}[5m]))
      success: result < 0.01
  during: []
  post:
    - id: smoke
      kind: manual
      text: Smoke test the main flow
";

/// A new template: the YAML editor, started from an example.
#[component]
pub fn NewTemplatePage() -> impl IntoView {
    let save = ServerAction::<SaveTemplate>::new();
    view! {
        <Title text="New template"/>
        <p class="crumbs"><a href="/deployments#templates">"← Templates"</a></p>
        <h1>"New checklist template"</h1>
        <section class="panel" id="editor">
            <p class="muted">"Sections pre, during and post; items of kind manual (people check them), metric (Lookout measures a Prometheus query) or probe (Lookout runs a probe and its findings decide). An error names its line and column, and nothing is saved."</p>
            <ActionForm action=save attr:class="stack wide" attr:id="template-form">
                <input type="hidden" name="edit_of" value=""/>
                <textarea name="yaml" rows="26" spellcheck="false" class="code" aria-label="Template YAML">{crate::components::common::raw_element_text(STARTER)}</textarea>
                <button type="submit" class="primary">"Save"</button>
            </ActionForm>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_values() {
        assert_eq!(threshold("result < 0.001"), Some(0.001));
        assert_eq!(threshold("all(result < 500)"), Some(500.0));
        assert_eq!(threshold("any(result>=2)"), Some(2.0));
        assert_eq!(threshold("nonsense"), None);
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(0.0005), "5.00e-4");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(120.0), "120");
    }
}
