//! Deployment checklists: the list of deployments and templates, and a read-only page per
//! deployment. Changes go through the API for now (docs/api.md); the page says what is not
//! built yet.

use leptos::prelude::*;
use leptos_meta::Title;

/// Deployment checklists as far as they are built: the deployments (opened, worked and signed
/// through the API so far) and the templates. The page says what is not built.
#[component]
pub fn DeploymentsPage() -> impl IntoView {
    let templates = Resource::new(|| (), |_| crate::deployment_fns::list_templates());
    let deployments = Resource::new(|| (), |_| crate::deployment_fns::list_deployments());
    view! {
        <Title text="Deployments"/>
        <h1>"Deployments"</h1>
        <p class="muted" id="deployments-status">"Built so far: checklist templates (manual items), deployments with their status, item checks, sign-off with separation of duties, and the CI gate — through the API (docs/api.md). Each deployment has a read-only page. Not built yet: forms on these pages, automated items (probes, Prometheus metrics, Kafka lag), built-in templates."</p>
        <section class="panel" id="deployments">
            <h2>"Newest deployments"</h2>
            <Suspense fallback=crate::components::common::Loading>
                {move || Suspend::new(async move {
                    match deployments.await {
                        Err(e) => view! { <crate::components::common::ErrorPanel error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No deployments yet. CI opens one with POST /api/v1/deployments."</p> }.into_any(),
                        Ok(list) => view! {
                            <div class="table-wrap">
                            <table class="data" id="deployments-table">
                                <thead><tr><th>"Key"</th><th>"Service"</th><th>"Env"</th><th>"Version"</th><th>"Status"</th><th>"Template"</th><th>"Requested by"</th><th>"Opened"</th></tr></thead>
                                <tbody>
                                {list.into_iter().map(|d| { let (key, href) = (d.key.clone(), format!("/deployments/{}", d.key)); view! {
                                    <tr data-key=key>
                                        <td><a href=href><strong>{d.key}</strong></a></td>
                                        <td>{d.service}</td>
                                        <td>{d.environment}</td>
                                        <td>{d.version}</td>
                                        <td><span class=format!("badge dstatus dstatus-{}", d.status.as_str())>{d.status.as_str()}</span></td>
                                        <td><code>{format!("{} v{}", d.template_id, d.template_version)}</code></td>
                                        <td>{d.requester}</td>
                                        <td><crate::components::time::LocalTime at=d.created_at/></td>
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
        <section class="panel" id="templates">
            <h2>"Checklist templates"</h2>
            <p class="muted">"A template is YAML (sections pre, during and post; manual items so far). "
                <code>"POST /api/v1/deployment-templates"</code>" creates one, "
                <code>"PUT /api/v1/deployment-templates/{id}"</code>" saves a new version; old versions never change. See docs/api.md."</p>
            <Suspense fallback=crate::components::common::Loading>
                {move || Suspend::new(async move {
                    match templates.await {
                        Err(e) => view! { <crate::components::common::ErrorPanel error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No templates yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <div class="table-wrap">
                            <table class="data" id="templates-table">
                                <thead><tr><th>"Template"</th><th>"Version"</th><th>"Items"</th><th>"Description"</th><th>"Saved"</th></tr></thead>
                                <tbody>
                                {list.into_iter().map(|t| { let id = t.template_id.clone(); view! {
                                    <tr data-template=id>
                                        <td><strong>{t.name}</strong><br/><code>{t.template_id}</code>{t.built_in.then_some(" (built in)")}</td>
                                        <td>{format!("v{}", t.latest_version)}</td>
                                        <td>{t.items}</td>
                                        <td>{t.description}</td>
                                        <td><crate::components::time::LocalTime at=t.updated_at/>{format!(" by {}", t.updated_by)}</td>
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

/// One deployment, read-only: its items by section, sign-off, what blocks it and its record.
/// Server-rendered (works without JavaScript); changes go through the API for now.
#[component]
pub fn DeploymentPage() -> impl IntoView {
    use crate::components::common::{ErrorPanel, Loading};
    use crate::components::time::LocalTime;
    use domain::deployments::Section;
    let params = leptos_router::hooks::use_params_map();
    let key = move || {
        params
            .read()
            .get("key")
            .unwrap_or_default()
            .to_ascii_uppercase()
    };
    let data = Resource::new(key, crate::deployment_fns::get_deployment);
    view! {
        <Title text=key/>
        <p class="crumbs"><a href="/deployments">"← Deployments"</a></p>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok((d, events)) => {
                        let dep = d.deployment.clone();
                        view! {
                            <h1>{format!("{} · {} {} → {}", dep.key, dep.service, dep.version, dep.environment)}</h1>
                            <p>
                                <span class=format!("badge dstatus dstatus-{}", dep.status.as_str()) id="deployment-status">{dep.status.as_str()}</span>
                                {format!(" · requested by {} · template {} v{} · ", dep.requester, dep.template_id, dep.template_version)}
                                <LocalTime at=dep.created_at/>
                                {dep.commit.clone().map(|c| view! { " · commit " <code>{c}</code> })}
                            </p>
                            {(!dep.description.is_empty()).then(|| view! { <p>{dep.description.clone()}</p> })}
                            <section class="panel" id="blocking">
                                <h2>{format!("Sign-off: {} of {} approvals", d.approvals_given, d.approvals_needed)}</h2>
                                {if d.blocking.is_empty() {
                                    view! { <p class="muted">"Nothing blocks the next step."</p> }.into_any()
                                } else {
                                    view! { <ul class="plain">{d.blocking.iter().cloned().map(|b| view! { <li>{b}</li> }).collect_view()}</ul> }.into_any()
                                }}
                                <ul class="plain" id="approvals">
                                    {d.approvals.iter().cloned().map(|a| view! {
                                        <li class:voided=a.voided_at.is_some()>
                                            <strong>{a.approver}</strong>{format!(" {} ", a.decision)}<LocalTime at=a.at/>
                                            {a.reason.map(|r| format!(": {r}"))}
                                            " · snapshot " <code title=a.snapshot_sha256.clone()>{a.snapshot_sha256.chars().take(12).collect::<String>()}</code>
                                            {a.voided_reason.map(|r| view! { <span class="muted">{format!(" — voided: {r}")}</span> })}
                                        </li>
                                    }).collect_view()}
                                </ul>
                            </section>
                            {Section::ALL.into_iter().map(|s| {
                                let items: Vec<_> = d.items.iter().filter(|i| i.section == s).cloned().collect();
                                view! {
                                    <section class="panel" id=format!("section-{}", s.as_str())>
                                        <h2>{format!("{} ({})", s.as_str(), items.len())}</h2>
                                        <div class="table-wrap">
                                        <table class="data items">
                                            <thead><tr><th>"Item"</th><th>"State"</th><th>"Required"</th><th>"By"</th><th>"Note"</th></tr></thead>
                                            <tbody>
                                            {items.into_iter().map(|i| { let id = i.item_id.clone(); view! {
                                                <tr data-item=id>
                                                    <td><code>{i.item_id}</code>" "{i.text}</td>
                                                    <td><span class=format!("badge istate istate-{}", i.state.as_str())>{i.state.as_str()}</span></td>
                                                    <td>{if i.required { "yes" } else { "no" }}</td>
                                                    <td>{i.set_by.unwrap_or_default()}</td>
                                                    <td>{i.note.unwrap_or_default()}</td>
                                                </tr>
                                            }}).collect_view()}
                                            </tbody>
                                        </table>
                                        </div>
                                    </section>
                                }
                            }).collect_view()}
                            <section class="panel" id="record">
                                <h2>{format!("Record ({})", events.len())}</h2>
                                <ol class="plain">
                                    {events.into_iter().map(|(at, actor, kind, body)| view! {
                                        <li><LocalTime at/>{format!(" · {actor} · {kind} · ")}{body}</li>
                                    }).collect_view()}
                                </ol>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
