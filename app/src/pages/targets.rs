//! Targets: the systems probes look at. Admins add and remove them (credentials are
//! encrypted and never shown again); responders test connections.

use crate::components::common::{ErrorPanel, Loading};
use crate::components::time::LocalTime;
use crate::pages::probe_runs::{RunProbeForm, RunTable, run_status_class};
use crate::probe_fns::{StartProbeRun, probe_catalogue, target_probe_runs};
use crate::target_fns::*;
use domain::targets::Target;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn TargetsPage() -> impl IntoView {
    let create = ServerAction::<CreateTarget>::new();
    let delete = ServerAction::<DeleteTarget>::new();
    let test = ServerAction::<TestTarget>::new();
    let kinds = Resource::new(|| (), |_| target_kinds());
    let targets = Resource::new(|| (), |_| list_targets());
    view! {
        <Title text="Targets"/>
        <h1>"Targets"</h1>
        <p class="muted">"The systems Lookout looks at. Open a target to run a probe against it (Redis, PostgreSQL, Kafka lag) and to see its run history; “Test connection” checks that Lookout can reach it."</p>
        // Where a connection test's result is shown (`components::enhance`).
        <div id="test-slot"></div>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match targets.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <section class="panel empty-state"><h2>"No targets yet"</h2>
                        <p class="muted">"An admin adds the first one below."</p></section>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                        <table class="data" id="targets-table">
                            <thead><tr><th>"Name"</th><th>"Kind"</th><th>"Connection"</th><th>"Environment"</th><th>"Credentials"</th><th>"Last probe"</th><th></th></tr></thead>
                            <tbody>
                            {list.into_iter().map(|t| {
                                let id = t.id.to_string();
                                let id2 = id.clone();
                                view! {
                                    <tr data-target=t.name.clone()>
                                        <td><a href=format!("/targets/{}", t.id)><strong>{t.name.clone()}</strong></a></td>
                                        <td>{t.kind.to_string()}</td>
                                        <td><code>{t.connection.clone()}</code></td>
                                        <td>{t.environment.clone()}</td>
                                        <td>{match (t.username.is_empty(), t.secret_set) {
                                            (_, true) => format!("{}secret set", if t.username.is_empty() { String::new() } else { format!("{} · ", t.username) }),
                                            (false, false) => format!("{} · no secret", t.username),
                                            (true, false) => "none".to_string(),
                                        }}</td>
                                        <td class="last-run">{match t.last_run.clone() {
                                            Some(r) => view! {
                                                <a href=format!("/probe-runs/{}", r.id)><span class=run_status_class(r.status)>{r.status.label()}</span></a>
                                                " "<LocalTime at=r.started_at/>
                                                <span class="muted">{format!(" · {} finding{}", r.finding_count, if r.finding_count == 1 { "" } else { "s" })}</span>
                                            }.into_any(),
                                            None => view! { <span class="muted">"never"</span> }.into_any(),
                                        }}</td>
                                        <td class="actions">
                                            <ActionForm action=test attr:class="inline" attr:data-result="connection-test"
                                                attr:data-result-into="#test-slot" attr:data-pending=TESTING>
                                                <input type="hidden" name="target_id" value=id/>
                                                <button type="submit">"Test connection"</button>
                                            </ActionForm>
                                            <ActionForm action=delete attr:class="inline">
                                                <input type="hidden" name="target_id" value=id2/>
                                                <button type="submit" class="danger">"Delete"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                            </tbody>
                        </table>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
        <p><a href="/kubernetes/manifests">"Check Kubernetes manifests (paste YAML) →"</a></p>
        <section class="panel">
            <h2>"Add a target (admins)"</h2>
            <ActionForm action=create attr:class="grid-form" attr:id="create-target-form" attr:data-done="Added {name} ({kind}).">
                <label>"Name" <input type="text" name="name" required pattern="[a-z0-9][a-z0-9._\\-]{0,62}" placeholder="orders-cache"/></label>
                <Suspense fallback=|| view! { <label>"Kind" <input type="text" name="kind" required/></label> }>
                    {move || Suspend::new(async move {
                        // The kinds the server supports, from its registry.
                        let list = kinds.await.unwrap_or_default();
                        view! { <label>"Kind" <select name="kind">
                            {list.into_iter().map(|k| view! { <option value=k.kind.to_string() title=k.connection_help>{k.kind.to_string()}</option> }).collect_view()}
                        </select></label> }
                    })}
                </Suspense>
                <label>"Connection (URL without password, Kafka bootstrap servers, or the Kubernetes API server URL)" <input type="text" name="connection" required placeholder="redis://orders-cache:6379/0"/></label>
                <label>"Username" <input type="text" name="username" autocomplete="off"/></label>
                <label>"Password or token (stored encrypted, never shown)" <input type="password" name="secret" autocomplete="new-password"/></label>
                <label class="wide">"Kubeconfig, for Kubernetes (stored encrypted, never shown; inline credentials, no exec plugins)"
                    <textarea name="kubeconfig" rows="4" spellcheck="false" autocomplete="off" placeholder="kubectl config view --raw --flatten --minify"></textarea></label>
                <label>"Environment" <input type="text" name="environment" required value="production"/></label>
                <button type="submit" class="primary">"Add target"</button>
            </ActionForm>
        </section>
    }
}

/// Shown while a connection test runs (it takes up to 10 s against a dead host).
const TESTING: &str = "Testing the connection (up to 10 s)…";

/// One target: details, edit (admins), test connection, run a probe, run history.
#[component]
pub fn TargetPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let update = ServerAction::<UpdateTarget>::new();
    let test = ServerAction::<TestTarget>::new();
    let start = ServerAction::<StartProbeRun>::new();
    let target = Resource::new(id, get_target);
    let catalogue = Resource::new(|| (), |_| probe_catalogue());
    let history = Resource::new(id, target_probe_runs);
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                let t = match target.await {
                    Ok(t) => t,
                    Err(e) => return view! { <ErrorPanel error=e/> }.into_any(),
                };
                let cat = catalogue.await.unwrap_or_default();
                view! { <TargetView t=t catalogue=cat update=update test=test start=start/> }.into_any()
            })}
        </Suspense>
        <section class="panel" id="run-history">
            <h2>"Run history (newest 50)"</h2>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match history.await {
                        Ok(runs) => view! { <RunTable runs=runs/> }.into_any(),
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TargetView(
    t: Target,
    catalogue: Vec<domain::probe_runs::ProbeInfo>,
    update: ServerAction<UpdateTarget>,
    test: ServerAction<TestTarget>,
    start: ServerAction<StartProbeRun>,
) -> impl IntoView {
    let id = t.id.to_string();
    let id2 = id.clone();
    let labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    view! {
        <Title text=t.name.clone()/>
        <h1>{t.name.clone()}<span class="muted">{format!(" · {} · {}", t.kind, t.environment)}</span></h1>
        <section class="panel target-facts">
            <dl class="facts">
                <dt>"Connection"</dt><dd><code>{t.connection.clone()}</code></dd>
                <dt>"Username"</dt><dd>{if t.username.is_empty() { "—".to_string() } else { t.username.clone() }}</dd>
                <dt>"Secret"</dt><dd>{if t.secret_set { "set (encrypted; never shown)" } else { "none" }}</dd>
                <dt>"Labels"</dt><dd>{if labels.is_empty() { "—".to_string() } else { labels.join(", ") }}</dd>
                <dt>"Added"</dt><dd><LocalTime at=t.created_at/>{format!(" by {}", t.created_by)}</dd>
            </dl>
            <ActionForm action=test attr:class="inline" attr:data-result="connection-test" attr:data-pending=TESTING>
                <input type="hidden" name="target_id" value=id2/>
                <button type="submit">"Test connection"</button>
            </ActionForm>
        </section>
        <section class="panel" id="run-probe-panel">
            <h2>"Run a probe"</h2>
            // Started here, a run is followed on its own page (live, with its findings).
            <RunProbeForm action=start targets=vec![t.clone()] catalogue=catalogue then="/probe-runs/{id}"/>
        </section>
        <details class="panel" id="edit-target">
            <summary>"Edit (admins)"</summary>
            <ActionForm action=update attr:class="grid-form" attr:id="edit-target-form" attr:data-done="Saved {name}.">
                <input type="hidden" name="target_id" value=id/>
                <label>"Name" <input type="text" name="name" required value=t.name.clone()/></label>
                <label>"Connection" <input type="text" name="connection" required value=t.connection.clone()/></label>
                <label>"Username" <input type="text" name="username" value=t.username.clone() autocomplete="off"/></label>
                <label>{if t.secret_set { "Replace the secret (empty keeps it)" } else { "Set a secret" }}
                    <input type="password" name="secret" autocomplete="new-password"/></label>
                <label class="wide">"Or a new kubeconfig (Kubernetes)"
                    <textarea name="kubeconfig" rows="4" spellcheck="false" autocomplete="off"></textarea></label>
                <label class="check"><input type="checkbox" name="clear_secret"/>" Remove the stored secret"</label>
                <label>"Environment" <input type="text" name="environment" required value=t.environment.clone()/></label>
                <button type="submit" class="primary">"Save"</button>
            </ActionForm>
        </details>
    }
}
