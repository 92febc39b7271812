//! Incident pages: the list (with stats and filters), the new-incident form, and the
//! incident page (header and controls, timeline, findings, notes, action items, postmortem).
//! Everything renders on the server and works without wasm; once enhanced
//! (`components::enhance`), forms act in place and the incident page follows other
//! people's changes live (server-sent events, `data-stream`).

use crate::components::common::{ErrorPanel, Loading, Pager, query_value};
use crate::components::findings::{FindingCard, FindingSummary};
use crate::components::time::{LocalTime, MaybeTime};
use crate::incident_fns::*;
use domain::incidents::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

fn sev_class(s: Severity) -> String {
    format!("badge sev sev-{}", s.as_str().to_ascii_lowercase())
}

fn status_class(s: IncidentStatus) -> String {
    format!("badge status status-{}", s.as_str())
}

fn opt_time(t: Option<f64>) -> String {
    t.map(human_duration).unwrap_or_else(|| "—".into())
}

#[component]
pub fn IncidentListPage() -> impl IntoView {
    let q = use_query_map();
    let get = move |k: &str| q.read().get(k).filter(|s| !s.is_empty());
    let page = Resource::new(
        move || {
            (
                get("status"),
                get("severity"),
                get("service"),
                get("environment"),
                get("label"),
                get("q"),
                get("cursor"),
            )
        },
        |(status, severity, service, environment, label, q, cursor)| {
            list_incidents(status, severity, service, environment, label, q, cursor)
        },
    );
    let stats = Resource::new(|| (), |_| incident_stats());
    let sel = move |k: &'static str, v: &'static str| get(k).as_deref() == Some(v);
    view! {
        <Title text="Incidents"/>
        <div class="page-head">
            <h1>"Incidents"</h1>
            <a class="button primary" href="/incidents/new">"Open an incident"</a>
        </div>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match stats.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(rows) => view! {
                        <div class="table-wrap">
                        <table class="data stats" id="incident-stats">
                            <caption>"Open incidents, and mean time to acknowledge / mitigate / resolve (last 30 and 90 days)"</caption>
                            <thead><tr>
                                <th>"Severity"</th><th>"Open"</th>
                                <th>"MTTA 30d"</th><th>"MTTM 30d"</th><th>"MTTR 30d"</th>
                                <th>"MTTA 90d"</th><th>"MTTM 90d"</th><th>"MTTR 90d"</th>
                            </tr></thead>
                            <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr>
                                    <td><span class=sev_class(r.means.severity)>{r.means.severity.as_str()}</span></td>
                                    <td><strong>{r.open}</strong></td>
                                    <td>{opt_time(r.means.mtta_30d)}</td><td>{opt_time(r.means.mttm_30d)}</td><td>{opt_time(r.means.mttr_30d)}</td>
                                    <td>{opt_time(r.means.mtta_90d)}</td><td>{opt_time(r.means.mttm_90d)}</td><td>{opt_time(r.means.mttr_90d)}</td>
                                </tr>
                            }).collect_view()}
                            </tbody>
                        </table>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
        <form method="get" class="filters" id="incident-filters">
            <label>"Search" <input type="text" name="q" placeholder="INC-42 or words of the title" value=move || get("q").unwrap_or_default()/></label>
            <label>"Status"
                <select name="status">
                    <option value="" selected=move || get("status").is_none()>"any"</option>
                    <option value="open" selected=move || sel("status", "open")>"open (not resolved)"</option>
                    {IncidentStatus::ALL.iter().map(|s| {
                        let v = s.as_str();
                        view! { <option value=v selected=move || get("status").as_deref() == Some(v)>{v}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Severity"
                <select name="severity">
                    <option value="">"any"</option>
                    {Severity::ALL.iter().map(|s| {
                        let v = s.as_str();
                        view! { <option value=v selected=move || get("severity").as_deref() == Some(v)>{v}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Service" <input type="text" name="service" value=move || get("service").unwrap_or_default()/></label>
            <label>"Environment" <input type="text" name="environment" value=move || get("environment").unwrap_or_default()/></label>
            <label>"Label" <input type="text" name="label" placeholder="team=payments" value=move || get("label").unwrap_or_default()/></label>
            <button type="submit">"Filter"</button>
            <a href="/incidents">"Clear"</a>
        </form>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(p) if p.incidents.is_empty() => view! {
                        <section class="panel empty-state"><h2>"No incidents match"</h2>
                        <p class="muted">"Nothing is recorded for these filters. Open one when something breaks, or let Alertmanager open them through the webhook."</p></section>
                    }.into_any(),
                    Ok(p) => {
                        let next = p.next_cursor.clone().map(|c| {
                            let mut qs: Vec<String> = vec![];
                            for k in ["status", "severity", "service", "environment", "label", "q"] {
                                if let Some(v) = get(k) { qs.push(format!("{k}={}", query_value(&v))); }
                            }
                            qs.push(format!("cursor={}", query_value(&c)));
                            format!("?{}", qs.join("&"))
                        });
                        let first = get("cursor").is_some();
                        view! {
                            <div class="table-wrap">
                            <table class="data" id="incident-table">
                                <thead><tr>
                                    <th>"Key"</th><th>"Severity"</th><th>"Status"</th><th>"Title"</th>
                                    <th>"Services"</th><th>"Env"</th><th>"Commander"</th><th>"Detected"</th>
                                </tr></thead>
                                <tbody>
                                {p.incidents.into_iter().map(|i| {
                                    let href = format!("/incidents/{}", i.key);
                                    view! {
                                        <tr data-key=i.key.clone()>
                                            <td><a href=href.clone()><strong>{i.key.clone()}</strong></a></td>
                                            <td><span class=sev_class(i.severity)>{i.severity.as_str()}</span></td>
                                            <td><span class=status_class(i.status)>{i.status.as_str()}</span></td>
                                            <td><a href=href>{i.title.clone()}</a></td>
                                            <td>{i.services.join(", ")}</td>
                                            <td>{i.environment.clone()}</td>
                                            <td>{i.commander.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td><LocalTime at=i.times.detected_at/></td>
                                        </tr>
                                    }
                                }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                            <Pager first=first.then(|| "/incidents".to_string()) next=next end="End of the list."/>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn NewIncidentPage() -> impl IntoView {
    let create = ServerAction::<CreateIncident>::new();
    view! {
        <Title text="Open an incident"/>
        <h1>"Open an incident"</h1>
        <section class="panel">
            <ActionForm action=create attr:class="stack wide" attr:id="new-incident-form">
                <label>"Title" <input type="text" name="title" required maxlength="200" placeholder="Checkout returns 500s"/></label>
                <label>"Severity"
                    <select name="severity">
                        {Severity::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == Severity::Sev3>{s.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Affected services (comma-separated)" <input type="text" name="services" required placeholder="checkout, payments"/></label>
                <label>"Environment" <input type="text" name="environment" required value="production"/></label>
                <label>"Summary (markdown)" <textarea name="summary" rows="5" maxlength="20000"></textarea></label>
                <button type="submit" class="primary">"Open incident"</button>
            </ActionForm>
        </section>
    }
}

/// The incident key of the route (`inc-7` and `INC-7` are the same incident).
fn key_param(params: Memo<leptos_router::params::ParamsMap>) -> Signal<String> {
    Signal::derive(move || {
        params
            .read()
            .get("key")
            .unwrap_or_default()
            .to_ascii_uppercase()
    })
}

/// One finding of an incident, whole: its evidence and remediation (the incident page lists
/// findings as summaries that link here). Its status controls work here too.
#[component]
pub fn FindingPage() -> impl IntoView {
    let params = use_params_map();
    let key = key_param(params);
    let id = Signal::derive(move || {
        params
            .read()
            .get("id")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    });
    let fstatus = ServerAction::<SetFindingStatus>::new();
    let finding = Resource::new(
        move || (key.get(), id.get()),
        |(k, id)| crate::incident_fns::get_finding(k, id),
    );
    view! {
        <Title text=crate::components::common::param_title(params, |p| format!(
            "Finding {} · {}",
            p.get("id").unwrap_or_default(),
            p.get("key").unwrap_or_default().to_ascii_uppercase()
        ))/>
        <p class="crumbs"><a href=move || format!("/incidents/{}#findings", key.get())>{move || format!("← {}", key.get())}</a></p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match finding.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(f) => view! { <FindingCard f=f fstatus=fstatus/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn IncidentPage() -> impl IntoView {
    let params = use_params_map();
    let q = use_query_map();
    let key = key_param(params);
    let status = ServerAction::<SetIncidentStatus>::new();
    let severity = ServerAction::<SetIncidentSeverity>::new();
    let roles = ServerAction::<SetIncidentRoles>::new();
    let note = ServerAction::<AddIncidentNote>::new();
    let edit = ServerAction::<EditIncidentNote>::new();
    let pin = ServerAction::<PinIncidentEvent>::new();
    let finding = ServerAction::<AddIncidentFinding>::new();
    let item = ServerAction::<AddActionItem>::new();
    let istatus = ServerAction::<SetActionItemStatus>::new();
    let start = ServerAction::<crate::probe_fns::StartProbeRun>::new();
    let kind = move || q.read().get("kind").filter(|s| !s.is_empty());
    let show_all = move || q.read().get("all").is_some_and(|v| v == "1");
    let incident = Resource::new(
        move || (key.get(), kind(), show_all()),
        |(k, kind, all)| get_incident(k, kind, Some(all)),
    );
    let kind_filter = move || q.read().get("kind").filter(|s| !s.is_empty());
    view! {
        <Title text=crate::components::common::param_title(params, |p| p.get("key").unwrap_or_default().to_ascii_uppercase())/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match incident.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(page) => view! {
                        <IncidentView d=page.detail me=page.me hidden=page.hidden_events matching=page.matching_events kind_filter=kind_filter()
                            deployments=page.deployments
                            status=status severity=severity roles=roles note=note edit=edit pin=pin
                            finding=finding item=item istatus=istatus start=start/>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
#[allow(clippy::too_many_arguments)]
fn IncidentView(
    d: IncidentDetail,
    me: String,
    hidden: usize,
    matching: usize,
    kind_filter: Option<String>,
    deployments: Vec<domain::deployments::DeploymentNearIncident>,
    status: ServerAction<SetIncidentStatus>,
    severity: ServerAction<SetIncidentSeverity>,
    roles: ServerAction<SetIncidentRoles>,
    note: ServerAction<AddIncidentNote>,
    edit: ServerAction<EditIncidentNote>,
    pin: ServerAction<PinIncidentEvent>,
    finding: ServerAction<AddIncidentFinding>,
    item: ServerAction<AddActionItem>,
    istatus: ServerAction<SetActionItemStatus>,
    start: ServerAction<crate::probe_fns::StartProbeRun>,
) -> impl IntoView {
    let i = d.incident.clone();
    let key = i.key.clone();
    let age = (time::OffsetDateTime::now_utc() - i.times.detected_at).as_seconds_f64();
    // The server already applied the kind filter and the window.
    let filtered: Vec<TimelineEvent> = d.timeline.clone();
    let show_all_href = match &kind_filter {
        Some(k) => format!("?kind={k}&all=1"),
        None => "?all=1".to_string(),
    };
    let pinned: Vec<TimelineEvent> = filtered.iter().filter(|e| e.pinned).cloned().collect();
    let mut rest = filtered.clone();
    rest.reverse();
    let kinds: Vec<TimelineKind> = TimelineKind::ALL.to_vec();
    let groups: Vec<(FindingSeverity, Vec<Finding>)> = FindingSeverity::ALL
        .iter()
        .map(|s| {
            (
                *s,
                d.findings
                    .iter()
                    .filter(|f| f.severity == *s)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let k1 = key.clone();
    let k2 = key.clone();
    let k3 = key.clone();
    let k4 = key.clone();
    let k5 = key.clone();
    let k6 = key.clone();
    let pm_href = format!("/api/v1/incidents/{key}/postmortem.md");
    let pm_href2 = pm_href.clone();
    // Other people's changes re-render the page (`components::enhance`).
    let stream = format!("/api/v1/incidents/{key}/stream");
    let responders = d.responders.join(", ");
    view! {
        <header class="incident-head" id="incident-head" data-stream=stream>
            <div class="incident-title">
                <span class="key">{key.clone()}</span>
                <h1>{i.title.clone()}</h1>
            </div>
            <div class="badges">
                <span class=sev_class(i.severity) id="incident-severity">{i.severity.as_str()}</span>
                <span class=status_class(i.status) id="incident-status">{i.status.as_str()}</span>
                <span class="muted">{format!("open for {}", human_duration(age))}</span>
                <span>"Services: " <strong>{i.services.join(", ")}</strong></span>
                <span>"Env: " <strong>{i.environment.clone()}</strong></span>
            </div>
            <dl class="roles">
                <dt>"Commander"</dt><dd>{i.commander.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Scribe"</dt><dd>{d.scribe.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Responders"</dt><dd>{if responders.is_empty() { "—".to_string() } else { responders.clone() }}</dd>
            </dl>
            <dl class="stages">
                <dt>"Detected"</dt><dd><LocalTime at=i.times.detected_at/></dd>
                <dt>"Acknowledged"</dt><dd><MaybeTime at=i.times.acknowledged_at none="—"/></dd>
                <dt>"Mitigated"</dt><dd><MaybeTime at=i.times.mitigated_at none="—"/></dd>
                <dt>"Resolved"</dt><dd><MaybeTime at=i.times.resolved_at none="—"/></dd>
                <dt>"Closed"</dt><dd><MaybeTime at=i.times.closed_at none="—"/></dd>
            </dl>
        </header>
        <section class="panel controls">
            <ActionForm action=status attr:class="inline" attr:id="status-form">
                <input type="hidden" name="key" value=k1/>
                <label>"Status"
                    <select name="status">
                        {IncidentStatus::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == i.status>{s.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <input type="text" name="reason" placeholder="reason (optional)" aria-label="Reason"/>
                <button type="submit">"Change status"</button>
            </ActionForm>
            <ActionForm action=severity attr:class="inline" attr:id="severity-form">
                <input type="hidden" name="key" value=k2/>
                <label>"Severity"
                    <select name="severity">
                        {Severity::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == i.severity>{s.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <button type="submit">"Set severity"</button>
            </ActionForm>
            <details class="roles-edit">
                <summary>"Change roles"</summary>
                <ActionForm action=roles attr:class="grid-form" attr:id="roles-form">
                    <input type="hidden" name="key" value=k3/>
                    <label>"Commander" <input type="text" name="commander" value=i.commander.clone().unwrap_or_default()/></label>
                    <label>"Scribe" <input type="text" name="scribe" value=d.scribe.clone().unwrap_or_default()/></label>
                    <label>"Responders" <input type="text" name="responders" value=responders/></label>
                    <button type="submit">"Save roles"</button>
                </ActionForm>
            </details>
            <div class="postmortem">
                // A POST: exporting is recorded on the timeline (a GET of the same URL only reads).
                <form method="post" action=pm_href class="inline" id="postmortem-form">
                    <button type="submit" class="button" id="postmortem-download">"Export postmortem (.md)"</button>
                </form>
                // POST too (copying is an export, recorded on the timeline); works once enhanced.
                <button type="button" id="postmortem-copy" data-href=pm_href2>"Copy postmortem"</button>
            </div>
        </section>
        {(!d.summary_html.trim().is_empty()).then(|| view! {
            <section class="panel summary"><h2>"Summary"</h2><div class="md" inner_html=d.summary_html.clone()></div></section>
        })}
        <div class="incident-grid">
            <section class="timeline" id="timeline">
                <h2>"Timeline"</h2>
                <nav class="kind-filter" aria-label="Filter the timeline">
                    <a href="?" class:active=kind_filter.is_none()>"all"</a>
                    {kinds.into_iter().map(|k| {
                        let active = kind_filter.as_deref() == Some(k.as_str());
                        view! { <a href=format!("?kind={}", k.as_str()) class:active=active>{k.label()}</a> }
                    }).collect_view()}
                </nav>
                <section class="panel composer">
                    <ActionForm action=note attr:id="note-form">
                        <input type="hidden" name="key" value=k4/>
                        <NoteComposer/>
                    </ActionForm>
                </section>
                {(!pinned.is_empty()).then(|| view! {
                    <h3>"Pinned"</h3>
                    <ol class="events pinned">
                        {pinned.into_iter().map(|e| { let mine = e.actor == me; view! { <EventItem e=e mine=mine edit=edit pin=pin prefix="pinned-"/> } }).collect_view()}
                    </ol>
                    <h3>"All events"</h3>
                })}
                {(hidden > 0).then(|| view! {
                    <p class="window-note" id="timeline-window">
                        {format!("Showing {} of {matching} events: the newest {} and every pinned one. ", matching - hidden, crate::incident_fns::TIMELINE_WINDOW)}
                        <a href=show_all_href.clone()>{format!("Show all {matching} events")}</a>
                    </p>
                })}
                <ol class="events" id="events">
                    {rest.into_iter().map(|e| { let mine = e.actor == me; view! { <EventItem e=e mine=mine edit=edit pin=pin prefix=""/> } }).collect_view()}
                </ol>
            </section>
            <aside class="side">
                <IncidentProbes key=key.clone() open=i.status.is_open() start=start/>
                {(!deployments.is_empty()).then(|| view! {
                    <section class="deployments-near" id="deployments-near">
                        <h2>{format!("Deployments ({})", deployments.len())}</h2>
                        <ul class="plain">
                            {deployments.into_iter().map(|d| view! {
                                <li data-deployment=d.key.clone()>
                                    <a href=format!("/deployments/{}", d.key)><strong>{d.key.clone()}</strong></a>
                                    {format!(" {} {} · ", d.service, d.version)}
                                    <span class=format!("badge dstatus dstatus-{}", d.status)>{d.status.clone()}</span>
                                    " · " <crate::components::time::LocalTime at=d.created_at/>
                                    {d.linked.then(|| view! { " · " <strong>"linked"</strong> })}
                                </li>
                            }).collect_view()}
                        </ul>
                    </section>
                })}
                <section class="findings" id="findings">
                    <h2>{format!("Findings ({})", d.findings.len())}</h2>
                    {groups.is_empty().then(|| view! { <p class="muted">"No findings yet. Probes will add them; you can add one by hand below."</p> })}
                    {groups.into_iter().map(|(sev, list)| view! {
                        <h3 class=format!("finding-group fsev-{}", sev.as_str())>{format!("{} ({})", sev.as_str(), list.len())}</h3>
                        {list.into_iter().map(|f| view! { <FindingSummary f=f/> }).collect_view()}
                    }).collect_view()}
                    <details class="panel">
                        <summary>"Add a finding by hand"</summary>
                        <ActionForm action=finding attr:class="stack" attr:id="finding-form">
                            <input type="hidden" name="key" value=k5/>
                            <label>"Code" <input type="text" name="code" required placeholder="REDIS_NOEVICTION_NEAR_LIMIT" pattern="[A-Z][A-Z0-9_]{2,79}"/></label>
                            <label>"Severity" <select name="severity">
                                {FindingSeverity::ALL.iter().map(|s| view! { <option value=s.as_str()>{s.as_str()}</option> }).collect_view()}
                            </select></label>
                            <label>"Title" <input type="text" name="title" required maxlength="300"/></label>
                            <label>"Evidence (one “name: value” per line)" <textarea name="facts" rows="3"></textarea></label>
                            <label>"Command or query that shows it" <input type="text" name="command"/></label>
                            <label>"Remediation (markdown; code blocks become copyable commands)" <textarea name="remediation" rows="4"></textarea></label>
                            <button type="submit">"Add finding"</button>
                        </ActionForm>
                    </details>
                </section>
                <section class="panel action-items" id="action-items">
                    <h2>"Action items"</h2>
                    {d.action_items.is_empty().then(|| view! { <p class="muted">"None yet."</p> })}
                    <ul class="plain">
                        {d.action_items.iter().cloned().map(|a| {
                            let k = key.clone();
                            view! {
                                <li id=format!("action-{}", a.id)>
                                    <strong>{a.title.clone()}</strong>
                                    <span class="muted">{format!(" — {}{}", a.owner.clone().unwrap_or_else(|| "unassigned".into()),
                                        a.due_date.map(|d| format!(", due {d}")).unwrap_or_default())}</span>
                                    <ActionForm action=istatus attr:class="inline">
                                        <input type="hidden" name="key" value=k/>
                                        <input type="hidden" name="item_id" value=a.id.to_string()/>
                                        <select name="status" aria-label="Action item status">
                                            {ActionItemStatus::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == a.status>{s.as_str()}</option> }).collect_view()}
                                        </select>
                                        <button type="submit">"Set"</button>
                                    </ActionForm>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                    <ActionForm action=item attr:class="stack" attr:id="action-item-form">
                        <input type="hidden" name="key" value=k6/>
                        <label>"Action item" <input type="text" name="title" required maxlength="300"/></label>
                        <label>"Owner (username)" <input type="text" name="owner"/></label>
                        <label>"Due date" <input type="date" name="due_date"/></label>
                        <button type="submit">"Add action item"</button>
                    </ActionForm>
                </section>
            </aside>
        </div>
    }
}

/// The note textarea. "Preview" (once enhanced) shows the server's rendering of the
/// markdown, exactly what will be saved, under the buttons (`#note-preview-html`).
#[component]
fn NoteComposer() -> impl IntoView {
    view! {
        <label>"Add a note (markdown)"
            <textarea name="body" rows="3" required maxlength="20000" id="note-body"></textarea>
        </label>
        <div class="composer-actions">
            <button type="button" id="note-preview">"Preview"</button>
            <button type="submit" class="primary">"Add note"</button>
        </div>
    }
}

#[component]
fn EventItem(
    e: TimelineEvent,
    /// The viewer wrote it (only authors may edit notes).
    mine: bool,
    edit: ServerAction<EditIncidentNote>,
    pin: ServerAction<PinIncidentEvent>,
    prefix: &'static str,
) -> impl IntoView {
    let id = e.id;
    let anchor = format!("{prefix}event-{id}");
    let is_note = e.kind == TimelineKind::Note;
    let editable = is_note && mine;
    let history = e.history.clone();
    let body = e.body.clone();
    view! {
        <li class=format!("event kind-{}", e.kind.as_str()) id=anchor.clone() data-kind=e.kind.as_str()>
            <div class="event-meta">
                <a href=format!("#{anchor}") class="event-time"><LocalTime at=e.at/></a>
                <span class="event-kind">{e.kind.label()}</span>
                <span class="event-actor">{e.actor.clone()}</span>
                {e.pinned.then(|| view! { <span class="pin-mark" title="pinned">"📌"</span> })}
                {(!history.is_empty()).then(|| view! { <span class="muted">"(edited)"</span> })}
            </div>
            <div class="md event-body" inner_html=e.body_html.clone()></div>
            {(!e.details.is_empty() && !is_note).then(|| view! {
                <details class="event-details"><summary>"details"</summary><pre>{e.details.clone()}</pre></details>
            })}
            <div class="event-actions">
                <ActionForm action=pin attr:class="inline">
                    <input type="hidden" name="event_id" value=id.to_string()/>
                    <input type="hidden" name="pinned" value=(!e.pinned).to_string()/>
                    <button type="submit" class="link">{if e.pinned { "Unpin" } else { "Pin" }}</button>
                </ActionForm>
                {editable.then(|| view! {
                    <details class="edit-note">
                        <summary>"Edit"</summary>
                        <ActionForm action=edit attr:class="stack">
                            <input type="hidden" name="event_id" value=id.to_string()/>
                            <textarea name="body" rows="3" required maxlength="20000">{crate::components::common::raw_element_text(&body)}</textarea>
                            <button type="submit">"Save edit"</button>
                        </ActionForm>
                    </details>
                })}
                {(!history.is_empty()).then(|| view! {
                    <details class="history">
                        <summary>{format!("History ({} earlier version{})", history.len(), if history.len() == 1 { "" } else { "s" })}</summary>
                        <ol>
                            {history.into_iter().map(|h| view! {
                                <li><LocalTime at=h.edited_at/>" · "{h.edited_by}<pre>{h.body}</pre></li>
                            }).collect_view()}
                        </ol>
                    </details>
                })}
            </div>
        </li>
    }
}

/// How long a finished probe run stays a panel on the incident page.
const RECENT_RUN: time::Duration = time::Duration::minutes(10);

/// "Run probe" on an incident: the form, the runs in progress (live) and the finished ones.
#[component]
fn IncidentProbes(
    key: String,
    open: bool,
    start: ServerAction<crate::probe_fns::StartProbeRun>,
) -> impl IntoView {
    use crate::pages::probe_runs::{RunPanel, RunProbeForm, RunTable};
    let k = key.clone();
    let runs = Resource::new(
        || (),
        move |_| crate::probe_fns::incident_probe_runs(k.clone()),
    );
    let targets = Resource::new(|| (), |_| crate::target_fns::list_targets());
    let catalogue = Resource::new(|| (), |_| crate::probe_fns::probe_catalogue());
    view! {
        <section class="panel probes" id="probe-runs">
            <h2>"Probe runs"</h2>
            <Suspense fallback=Loading>
                {move || {
                    let key = key.clone();
                    Suspend::new(async move {
                        let list = runs.await.unwrap_or_default();
                        // Runs in progress (live) and those that ended in the last few minutes
                        // as panels (the one just started stays in view with its outcome);
                        // older ones in the table.
                        let recent = time::OffsetDateTime::now_utc() - RECENT_RUN;
                        let (running, done): (Vec<_>, Vec<_>) = list
                            .into_iter()
                            .partition(|r| !r.status.is_done() || r.finished_at.is_some_and(|f| f > recent));
                        let form = if open {
                            let t = targets.await.unwrap_or_default();
                            let c = catalogue.await.unwrap_or_default();
                            view! {
                                <details class="run-probe" open=running.is_empty() && done.is_empty()>
                                    <summary>"Run a probe"</summary>
                                    <RunProbeForm action=start targets=t catalogue=c incident_key=key/>
                                </details>
                            }.into_any()
                        } else {
                            view! { <p class="muted">"The incident is closed: re-open it to run probes."</p> }.into_any()
                        };
                        view! {
                            {form}
                            {running.into_iter().map(|r| view! { <RunPanel run_id=r.id/> }).collect_view()}
                            {(!done.is_empty()).then(|| view! { <RunTable runs=done show_target=true/> })}
                        }.into_any()
                    })
                }}
            </Suspense>
        </section>
    }
}
