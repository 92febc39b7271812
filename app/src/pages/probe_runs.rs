//! Probe runs in the UI: the form that starts one (target page and incident page), the
//! live run panel (steps, progress, elapsed time, cancel; findings when done), and the
//! run's own page. Without JavaScript the forms still post and a running run's page
//! refreshes itself every two seconds; enhanced (`components::enhance`), progress arrives by
//! server-sent events (`data-stream` on a running run's panel).

use crate::components::common::{ErrorPanel, Loading};
use crate::components::findings::FindingCard;
use crate::components::time::{LocalTime, MaybeTime};
use crate::incident_fns::SetFindingStatus;
use crate::probe_fns::*;
use domain::incidents::FindingSeverity;
use domain::probe_runs::{ProbeInfo, ProbeRun, ProbeRunDetail, RunStatus};
use domain::targets::Target;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

pub fn run_status_class(s: RunStatus) -> String {
    format!("badge run-status run-{}", s.as_str())
}

fn secs(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s >= 60.0 {
        format!("{:.0} min {:.0} s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// The "run a probe" form: a target × probe choice and each probe's parameters.
#[component]
pub fn RunProbeForm(
    action: ServerAction<StartProbeRun>,
    targets: Vec<Target>,
    catalogue: Vec<ProbeInfo>,
    #[prop(optional)] incident_key: Option<String>,
    /// Where to go once the run is started, `{id}` being the run (enhanced forms only;
    /// without it the page re-renders, showing the run live where the page lists runs).
    #[prop(optional)]
    then: Option<&'static str>,
) -> impl IntoView {
    let choices: Vec<(String, String, String)> = targets
        .iter()
        .flat_map(|t| {
            catalogue.iter().filter(|p| p.kind == t.kind).map(|p| {
                (
                    format!("{}:{}", t.id, p.name),
                    format!("{} — {} ({})", t.name, p.title, t.environment),
                    p.name.clone(),
                )
            })
        })
        .collect();
    if choices.is_empty() {
        return view! {
            <p class="muted">"No target has a probe yet. An admin adds a Redis or PostgreSQL target on the "<a href="/targets">"Targets"</a>" page."</p>
        }
        .into_any();
    }
    // The parameters of the chosen probe are shown (`components::enhance` follows the choice).
    let chosen = choices[0].2.clone();
    let used: Vec<ProbeInfo> = catalogue
        .into_iter()
        .filter(|p| choices.iter().any(|c| c.2 == p.name))
        .collect();
    view! {
        <ActionForm action=action attr:class="stack run-form" attr:id="run-probe-form" attr:data-then=then>
            {incident_key.map(|k| view! { <input type="hidden" name="incident_key" value=k/> })}
            <label>"Target and probe"
                <select name="choice" id="run-choice">
                    {choices.into_iter().map(|(v, label, p)| view! { <option value=v data-probe=p>{label}</option> }).collect_view()}
                </select>
            </label>
            {used.into_iter().map(|p| {
                let name = p.name.clone();
                let hidden = chosen != name;
                view! {
                    <details class="params" data-probe=name.clone() class:hidden=hidden>
                        <summary>{format!("{} parameters (defaults shown)", p.title)}</summary>
                        <p class="muted">{p.description.clone()}</p>
                        <div class="param-grid">
                        {p.params.iter().map(|prm| {
                            let field = format!("params[{}.{}]", name, prm.name);
                            let input = match prm.kind.as_str() {
                                "int" => view! {
                                    <input type="number" name=field value=prm.default.clone()
                                        min=prm.min.map(|m| m.to_string()) max=prm.max.map(|m| m.to_string())/>
                                }.into_any(),
                                "bool" => view! {
                                    <select name=field>
                                        <option value="false" selected=prm.default == "false">"no"</option>
                                        <option value="true" selected=prm.default == "true">"yes"</option>
                                    </select>
                                }.into_any(),
                                _ => view! { <input type="text" name=field value=prm.default.clone()/> }.into_any(),
                            };
                            view! { <label title=prm.help.clone()>{prm.label.clone()}{input}<small class="muted">{prm.help.clone()}</small></label> }
                        }).collect_view()}
                        </div>
                    </details>
                }
            }).collect_view()}
            <button type="submit" class="primary" id="run-probe">"Run probe"</button>
        </ActionForm>
    }
    .into_any()
}

/// One run, live while it runs.
#[component]
pub fn RunPanel(run_id: i64, #[prop(optional)] show_findings: bool) -> impl IntoView {
    let cancel = ServerAction::<CancelProbeRun>::new();
    let fstatus = ServerAction::<SetFindingStatus>::new();
    let run = Resource::new(|| (), move |_| get_probe_run(run_id));
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match run.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(d) => view! { <RunView d=d show_findings=show_findings cancel=cancel fstatus=fstatus/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RunView(
    d: ProbeRunDetail,
    show_findings: bool,
    cancel: ServerAction<CancelProbeRun>,
    fstatus: ServerAction<SetFindingStatus>,
) -> impl IntoView {
    let r: ProbeRun = d.run.clone();
    let total = r.steps.len().max(1);
    let done = r.steps_done();
    let running = r.status == RunStatus::Running;
    // While it runs, its progress re-renders the page (`components::enhance`).
    let stream = running.then(|| format!("/api/v1/probe-runs/{}/stream", r.id));
    let current = r.current_step().map(|s| {
        format!(
            "{}{}",
            s.name,
            s.detail
                .clone()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        )
    });
    let mut findings = d.findings.clone();
    findings.sort_by_key(|f| f.severity);
    let counts: Vec<(FindingSeverity, usize)> = FindingSeverity::ALL
        .iter()
        .map(|s| (*s, d.findings.iter().filter(|f| f.severity == *s).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    view! {
        <section class=format!("panel run run-{}", r.status.as_str()) id=format!("run-{}", r.id) data-status=r.status.as_str() data-stream=stream data-stream-ready="refresh" aria-live="polite">
            <header class="run-head">
                <strong>{format!("{} probe on ", r.probe)}
                    {match r.target_id {
                        Some(t) => view! { <a href=format!("/targets/{t}")>{r.target_name.clone()}</a> }.into_any(),
                        None => view! { <span>{format!("{} (deleted)", r.target_name)}</span> }.into_any(),
                    }}
                </strong>
                <span class=run_status_class(r.status) data-testid="run-status">{r.status.label()}</span>
                <a href=format!("/probe-runs/{}", r.id) class="muted">{format!("run {}", r.id)}</a>
            </header>
            <p class="muted run-meta">
                "Started by "{r.started_by.clone()}" at "<LocalTime at=r.started_at/>
                {format!(" · {} · {} commands", secs(r.elapsed_ms), r.commands)}
                {r.incident_key.clone().map(|k| view! { " · on " <a href=format!("/incidents/{k}")>{k.clone()}</a> })}
            </p>
            <div class="run-progress">
                <progress max=total.to_string() value=done.to_string()></progress>
                <span class="run-step" data-testid="run-step">
                    {format!("{done} of {total} steps")}
                    {current.map(|c| format!(" · {c}"))}
                </span>
            </div>
            <ol class="steps">
                {r.steps.clone().into_iter().map(|s| view! {
                    <li class=format!("step step-{}", s.status) data-step=s.name.clone()>
                        <span class="step-name">{s.name.clone()}</span>
                        <span class="step-status">{s.status.clone()}</span>
                        {(s.elapsed_ms > 0).then(|| view! { <span class="muted">{format!("{:.1} s", s.elapsed_ms as f64 / 1000.0)}</span> })}
                        {s.detail.clone().map(|x| view! { <span class="muted">{x}</span> })}
                    </li>
                }).collect_view()}
            </ol>
            {r.error.clone().filter(|_| r.status != RunStatus::Cancelled).map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            {running.then(|| view! {
                <ActionForm action=cancel attr:class="inline">
                    <input type="hidden" name="run_id" value=r.id.to_string()/>
                    <button type="submit" class="danger" disabled=r.cancel_requested>{if r.cancel_requested { "Cancelling…" } else { "Cancel run" }}</button>
                </ActionForm>
            })}
            {(!running).then(|| view! {
                <p class="run-summary">
                    {if counts.is_empty() { "No findings.".to_string() } else {
                        format!("{} finding{}: {}", r.finding_count, if r.finding_count == 1 { "" } else { "s" },
                            counts.iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect::<Vec<_>>().join(", "))
                    }}
                    {(!show_findings && r.incident_key.is_some()).then_some(" They are in the findings panel.")}
                </p>
            })}
            {(show_findings && !findings.is_empty()).then(|| view! {
                <div class="run-findings">
                    {findings.into_iter().map(|f| view! { <FindingCard f=f fstatus=fstatus/> }).collect_view()}
                </div>
            })}
        </section>
    }
}

/// A compact table of runs (history), newest first.
#[component]
pub fn RunTable(runs: Vec<ProbeRun>, #[prop(optional)] show_target: bool) -> impl IntoView {
    if runs.is_empty() {
        return view! { <p class="muted">"No runs yet."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
        <table class="data runs">
            <thead><tr><th>"Run"</th><th>"Started"</th>{show_target.then(|| view! { <th>"Target"</th> })}<th>"Probe"</th><th>"By"</th><th>"Status"</th><th>"Duration"</th><th>"Findings"</th><th>"Incident"</th></tr></thead>
            <tbody>
            {runs.into_iter().map(|r| view! {
                <tr data-run=r.id.to_string()>
                    <td><a href=format!("/probe-runs/{}", r.id)>{format!("#{}", r.id)}</a></td>
                    <td><LocalTime at=r.started_at/></td>
                    {show_target.then(|| view! { <td>{r.target_name.clone()}</td> })}
                    <td>{r.probe.clone()}</td>
                    <td>{r.started_by.clone()}</td>
                    <td><span class=run_status_class(r.status)>{r.status.label()}</span></td>
                    <td>{secs(r.elapsed_ms)}</td>
                    <td>{r.finding_count}</td>
                    <td>{r.incident_key.clone().map(|k| view! { <a href=format!("/incidents/{k}")>{k.clone()}</a> })}</td>
                </tr>
            }).collect_view()}
            </tbody>
        </table>
        </div>
    }
    .into_any()
}

#[component]
pub fn ProbeRunPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let attach = ServerAction::<AttachProbeRun>::new();
    let head = Resource::new(id, |id| async move {
        match id {
            Some(id) => get_probe_run(id).await,
            None => Err(crate::error::AppError::from(
                domain::DomainError::not_found("no such probe run"),
            )),
        }
    });
    view! {
        <Title text=crate::components::common::param_title(params, |p| format!(
            "Probe run {}",
            p.get("id").and_then(|s| s.parse::<i64>().ok()).unwrap_or_default()
        ))/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match head.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(d) => {
                        let run = d.run.clone();
                        view! {
                            <h1>{format!("Probe run {}: {} on {}", run.id, run.probe, run.target_name)}</h1>
                            {(run.status == RunStatus::Running).then(|| view! { <noscript><meta http-equiv="refresh" content="2"/></noscript> })}
                            <RunPanel run_id=run.id show_findings=true/>
                            {run.incident_key.is_none().then(|| view! {
                                <section class="panel">
                                    <h2>"Attach to an incident"</h2>
                                    <ActionForm action=attach attr:class="inline" attr:id="attach-form">
                                        <input type="hidden" name="run_id" value=run.id.to_string()/>
                                        <label>"Incident key" <input type="text" name="incident_key" required placeholder="INC-42"/></label>
                                        <button type="submit">"Attach run and findings"</button>
                                    </ActionForm>
                                </section>
                            })}
                            <section class="panel">
                                <h2>"Parameters"</h2>
                                <table class="data run-params"><tbody>
                                    {run.params.iter().map(|(k, v)| view! { <tr><td><code>{k.clone()}</code></td><td>{v.clone()}</td></tr> }).collect_view()}
                                </tbody></table>
                                <p class="muted">"Finished: "<MaybeTime at=run.finished_at none="not yet"/></p>
                            </section>
                            {(!d.evidence.is_empty()).then(|| view! {
                                <section class="panel">
                                    <h2>"Raw evidence"</h2>
                                    {d.evidence.iter().map(|(k, v)| view! {
                                        <details><summary>{k.clone()}</summary><pre class="raw">{v.clone()}</pre></details>
                                    }).collect_view()}
                                </section>
                            })}
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
