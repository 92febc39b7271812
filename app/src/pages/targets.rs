//! Targets: the systems probes look at. Admins add and remove them (credentials are
//! encrypted and never shown again); responders test connections.

use crate::components::common::{ErrorPanel, FormError, Loading};
use crate::target_fns::*;
use domain::targets::TargetKind;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn TargetsPage() -> impl IntoView {
    let create = ServerAction::<CreateTarget>::new();
    let delete = ServerAction::<DeleteTarget>::new();
    let test = ServerAction::<TestTarget>::new();
    let targets = Resource::new(
        move || (create.version().get(), delete.version().get()),
        |_| list_targets(),
    );
    view! {
        <Title text="Targets"/>
        <h1>"Targets"</h1>
        <p class="muted">"The systems Lookout looks at. Probes (Redis, PostgreSQL, Kafka, …) will run against these; for now each can be checked with “Test connection”."</p>
        {move || test.value().get().map(|r| match r {
            Ok((id, t)) => view! {
                <section class=if t.ok { "panel notice test-result" } else { "panel error test-result" } role="status" id="test-result" data-target=id.to_string()>
                    <strong>{if t.ok { "Connected: " } else { "Failed: " }}</strong>{t.summary.clone()}
                    {(!t.facts.is_empty()).then(|| view! {
                        <ul class="plain">{t.facts.iter().cloned().map(|(k, v)| view! { <li><code>{k}</code>": "{v}</li> }).collect_view()}</ul>
                    })}
                </section>
            }.into_any(),
            Err(e) => view! { <FormError error=Some(e)/> }.into_any(),
        })}
        {move || test.pending().get().then(|| view! { <p class="loading" aria-busy="true">"Testing the connection (up to 10 s)…"</p> })}
        {move || delete.value().get().and_then(|r| r.err()).map(|e| view! { <FormError error=Some(e)/> })}
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
                            <thead><tr><th>"Name"</th><th>"Kind"</th><th>"Connection"</th><th>"Environment"</th><th>"Credentials"</th><th></th></tr></thead>
                            <tbody>
                            {list.into_iter().map(|t| {
                                let id = t.id.to_string();
                                let id2 = id.clone();
                                view! {
                                    <tr data-target=t.name.clone()>
                                        <td><strong>{t.name.clone()}</strong></td>
                                        <td>{t.kind.as_str()}</td>
                                        <td><code>{t.connection.clone()}</code></td>
                                        <td>{t.environment.clone()}</td>
                                        <td>{match (t.username.is_empty(), t.secret_set) {
                                            (_, true) => format!("{}secret set", if t.username.is_empty() { String::new() } else { format!("{} · ", t.username) }),
                                            (false, false) => format!("{} · no secret", t.username),
                                            (true, false) => "none".to_string(),
                                        }}</td>
                                        <td class="actions">
                                            <ActionForm action=test attr:class="inline">
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
        <section class="panel">
            <h2>"Add a target (admins)"</h2>
            <ActionForm action=create attr:class="grid-form" attr:id="create-target-form">
                <label>"Name" <input type="text" name="name" required pattern="[a-z0-9][a-z0-9._\\-]{0,62}" placeholder="orders-cache"/></label>
                <label>"Kind" <select name="kind">
                    {TargetKind::ALL.iter().map(|k| view! { <option value=k.as_str() title=k.connection_help()>{k.as_str()}</option> }).collect_view()}
                </select></label>
                <label>"Connection (URL without password, or Kafka bootstrap servers)" <input type="text" name="connection" required placeholder="redis://orders-cache:6379/0"/></label>
                <label>"Username" <input type="text" name="username" autocomplete="off"/></label>
                <label>"Password or token (stored encrypted, never shown)" <input type="password" name="secret" autocomplete="new-password"/></label>
                <label>"Environment" <input type="text" name="environment" required value="production"/></label>
                <button type="submit" class="primary">"Add target"</button>
            </ActionForm>
            {move || create.value().get().map(|r| match r {
                Ok(t) => view! { <p class="notice" role="status">{format!("Added {} ({}).", t.name, t.kind)}</p> }.into_any(),
                Err(e) => view! { <FormError error=Some(e)/> }.into_any(),
            })}
        </section>
    }
}
