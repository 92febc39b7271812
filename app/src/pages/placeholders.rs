//! Sections that later work fills. Each says plainly what will be here and what is not
//! built yet; none shows invented data.

use crate::components::common::EmptyState;
use leptos::prelude::*;
use leptos_meta::Title;

/// What exists of deployment checklists so far: the templates (made and versioned through
/// the API). Deployments, sign-off and the CI gate are not built yet, and the page says so.
#[component]
pub fn DeploymentsPage() -> impl IntoView {
    let templates = Resource::new(|| (), |_| crate::deployment_fns::list_templates());
    view! {
        <Title text="Deployments"/>
        <h1>"Deployments"</h1>
        <EmptyState
            title="No deployments yet"
            what="Pre-, during- and post-deploy checklists will live here: items checked by people or verified by probes and metrics, sign-offs by approvers, and a gate that CI can query."
            status="Not built yet: deployments, sign-off and the CI gate. Checklist templates exist (below): approvers create and version them with the API."
        />
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
