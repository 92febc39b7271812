//! Sections that later work fills. Each says plainly what will be here and what is not
//! built yet; none shows invented data.

use crate::components::common::EmptyState;
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
        <p class="muted" id="deployments-status">"Built so far: checklist templates (manual items), deployments with their status, item checks, sign-off with separation of duties, and the CI gate — through the API (docs/api.md). Not built yet: these pages' forms, automated items (probes, Prometheus metrics, Kafka lag), built-in templates."</p>
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
                                {list.into_iter().map(|d| { let key = d.key.clone(); view! {
                                    <tr data-key=key>
                                        <td><strong>{d.key}</strong></td>
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

#[component]
pub fn CostsPage() -> impl IntoView {
    view! {
        <Title text="LLM costs"/>
        <h1>"LLM costs"</h1>
        <EmptyState
            title="No LLM usage recorded yet"
            what="The weekly cost review will live here: spend by provider, model, feature and tenant, priced against an effective-dated price book, with week-over-week explanations."
            status="Not built yet — no usage is being ingested."
        />
    }
}
