//! Settings (admins only): users, API tokens, the audit log. Every action is a server
//! function that checks the admin role on the server; the page only mirrors the answer.

use crate::account_fns::*;
use crate::components::common::{ErrorPanel, FormError, Loading, Pager, query_value};
use crate::components::time::{LocalTime, MaybeTime};
use domain::{AuditFilter, Role, TokenView, UserView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

#[component]
fn SettingsTabs() -> impl IntoView {
    view! {
        <nav class="tabs" aria-label="Settings">
            <A href="/settings/users">"Users"</A>
            <A href="/settings/tokens">"API tokens"</A>
            <A href="/settings/audit">"Audit log"</A>
        </nav>
    }
}

#[component]
pub fn SettingsIndex() -> impl IntoView {
    view! {
        <Title text="Settings"/>
        <h1>"Settings"</h1>
        <SettingsTabs/>
        <ul class="plain">
            <li><a href="/settings/users">"Users"</a>" — create users, change roles, disable, reset passwords."</li>
            <li><a href="/settings/tokens">"API tokens"</a>" — tokens for CI, Alertmanager and scripts."</li>
            <li><a href="/settings/audit">"Audit log"</a>" — every sign-in and every administrative action."</li>
            <li><a href="/account">"Your account"</a>" — change your own password."</li>
        </ul>
    }
}

fn role_options(selected: Role) -> impl IntoView {
    Role::ALL
        .iter()
        .map(|r| {
            view! { <option value=r.as_str() selected=*r == selected>{r.as_str()}</option> }
        })
        .collect_view()
}

/// Sorts the users table by the `sort` query parameter.
fn sort_users(users: &mut [UserView], key: &str) {
    match key {
        "role" => users.sort_by(|a, b| b.role.cmp(&a.role).then(a.username.cmp(&b.username))),
        "created" => users.sort_by_key(|u| std::cmp::Reverse(u.created_at)),
        "login" => users.sort_by_key(|u| std::cmp::Reverse(u.last_login_at)),
        _ => users.sort_by(|a, b| a.username.cmp(&b.username)),
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetUserPassword>::new();
    let q = use_query_map();
    let sort = move || q.read().get("sort").unwrap_or_else(|| "name".into());
    let users = Resource::new(|| (), |_| list_users());
    view! {
        <Title text="Users"/>
        <h1>"Users"</h1>
        <SettingsTabs/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match users.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(mut list) => {
                        sort_users(&mut list, &sort());
                        let count = list.len();
                        view! {
                            <div class="table-wrap">
                            <table class="data" id="users-table">
                                <caption>{format!("{count} users")}</caption>
                                <thead><tr>
                                    <th><a href="?sort=name">"User"</a></th>
                                    <th><a href="?sort=role">"Role"</a></th>
                                    <th>"Status"</th>
                                    <th><a href="?sort=created">"Created"</a></th>
                                    <th><a href="?sort=login">"Last sign-in"</a></th>
                                    <th>"Actions"</th>
                                </tr></thead>
                                <tbody>
                                {list.into_iter().map(|u| user_row(u, set_role, set_disabled, reset)).collect_view()}
                                </tbody>
                            </table>
                            </div>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
        <section class="panel">
            <h2>"Add a user"</h2>
            <ActionForm action=create attr:class="grid-form" attr:id="create-user-form" attr:data-done="Added {username} as {role}.">
                <label>"Username"
                    <input type="text" name="username" required pattern="[a-z0-9][a-z0-9._\\-]{1,62}"
                        title=domain::rules::USERNAME_HELP autocomplete="off"/>
                </label>
                <label>"Display name" <input type="text" name="display_name" maxlength="100"/></label>
                <label>"Role" <select name="role">{role_options(Role::Viewer)}</select></label>
                <label>"Initial password (at least 12 characters)"
                    <input type="password" name="password" minlength="12" required autocomplete="new-password"/>
                </label>
                <button type="submit" class="primary">"Add user"</button>
            </ActionForm>
        </section>
    }
}

fn user_row(
    u: UserView,
    set_role: ServerAction<SetUserRole>,
    set_disabled: ServerAction<SetUserDisabled>,
    reset: ServerAction<ResetUserPassword>,
) -> impl IntoView {
    let (id1, id2, id3) = (u.id.to_string(), u.id.to_string(), u.id.to_string());
    let toggle_to = (!u.disabled).to_string();
    view! {
        <tr data-username=u.username.clone()>
            <td><strong>{u.username.clone()}</strong><br/><span class="muted">{u.display_name.clone()}</span></td>
            <td><span class=format!("role role-{}", u.role)>{u.role.to_string()}</span></td>
            <td>{if u.disabled { "disabled" } else { "active" }}</td>
            <td><LocalTime at=u.created_at/></td>
            <td><MaybeTime at=u.last_login_at none="never"/></td>
            <td class="actions">
                <ActionForm action=set_role attr:class="inline">
                    <input type="hidden" name="user_id" value=id1/>
                    <select name="role" aria-label="Role">{role_options(u.role)}</select>
                    <button type="submit">"Set role"</button>
                </ActionForm>
                <ActionForm action=set_disabled attr:class="inline">
                    <input type="hidden" name="user_id" value=id2/>
                    <input type="hidden" name="disabled" value=toggle_to/>
                    <button type="submit">{if u.disabled { "Enable" } else { "Disable" }}</button>
                </ActionForm>
                <ActionForm action=reset attr:class="inline" attr:data-done="Password reset; that user's sessions were ended.">
                    <input type="hidden" name="user_id" value=id3/>
                    <input type="password" name="password" minlength="12" required placeholder="new password"
                        aria-label="New password" autocomplete="new-password"/>
                    <button type="submit">"Reset password"</button>
                </ActionForm>
            </td>
        </tr>
    }
}

#[component]
pub fn TokensPage() -> impl IntoView {
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(|| (), |_| async move { list_tokens().await });
    // Set only when this page answers a plain form post (see `api::TokenFormPost`).
    let posted = use_context::<TokenFormPost>();
    view! {
        <Title text="API tokens"/>
        <h1>"API tokens"</h1>
        <SettingsTabs/>
        <p class="muted">"Send a token as " <code>"Authorization: Bearer <token>"</code>
           ". It acts with the role it was given, is stored only as a hash, and is shown once."</p>
        {posted.map(|p| match p.0 {
            Ok(t) => view! { <NewTokenBox name=t.token.name secret=t.secret/> }.into_any(),
            Err(e) => view! { <FormError error=Some(e)/> }.into_any(),
        })}
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match tokens.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                        <table class="data" id="tokens-table">
                            <caption>{format!("{} tokens", list.len())}</caption>
                            <thead><tr>
                                <th>"Name"</th><th>"Prefix"</th><th>"Role"</th><th>"Created"</th>
                                <th>"Last used"</th><th>"State"</th><th></th>
                            </tr></thead>
                            <tbody>
                            {list.into_iter().map(|t| token_row(t, revoke)).collect_view()}
                            </tbody>
                        </table>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
        <section class="panel">
            <h2>"Create a token"</h2>
            // Posts to the server's own handler, which answers with this page and the secret in
            // it (never parked anywhere to be shown later); enhanced, the answer is shown in
            // place and the address stays a GET, so a reload does not post again.
            <form method="post" action="/settings/tokens" class="grid-form" id="create-token-form" data-enhance="page">
                <label>"Name" <input type="text" name="name" required maxlength="100" placeholder="ci-gate"/></label>
                <label>"Role" <select name="role">{role_options(Role::Viewer)}</select></label>
                <label>"For CI: limit to deployments of these services (comma-separated)"
                    <input type="text" name="deploy_services" maxlength="2000" placeholder="checkout, payments"/></label>
                <p class="muted">"A token limited to deployments works as a responder on those services' deployments only, and never signs."</p>
                <label class="check"><input type="checkbox" name="ingest" value="1"/>" Ingest token: it only sends OTLP traces to /v1/traces (LLM usage; docs/llm-costs.md)"</label>
                <button type="submit" class="primary">"Create token"</button>
            </form>
        </section>
    }
}

#[component]
fn NewTokenBox(name: String, secret: String) -> impl IntoView {
    view! {
        <section class="panel notice new-token" role="status">
            <h2>{format!("Token “{name}” created")}</h2>
            <p>"Copy it now: Lookout stores only its hash and will not show it again."</p>
            <pre><code id="new-token-secret">{secret}</code></pre>
        </section>
    }
}

fn token_row(t: TokenView, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    let live = t.revoked_at.is_none();
    view! {
        <tr data-token=t.name.clone()>
            <td>{t.name.clone()}</td>
            <td><code>{format!("{}…", t.prefix)}</code></td>
            <td><span class=format!("role role-{}", t.role)>{t.role.to_string()}</span>
                {t.deploy_services.clone().map(|s| view! { <br/><span class="muted scope">{format!("deployments of {} only", s.join(", "))}</span> })}
                {(t.scope.as_deref() == Some("ingest")).then(|| view! { <br/><span class="muted scope">"ingest only: sends traces"</span> })}</td>
            <td><LocalTime at=t.created_at/>" "<span class="muted">{t.created_by.map(|b| format!("by {b}"))}</span></td>
            <td><MaybeTime at=t.last_used_at none="never"/></td>
            <td>{match t.revoked_at {
                None => view! { "live" }.into_any(),
                Some(at) => view! { "revoked " <LocalTime at/> }.into_any(),
            }}</td>
            <td>{live.then(|| view! {
                <ActionForm action=revoke attr:class="inline">
                    <input type="hidden" name="token_id" value=t.id.to_string()/>
                    <button type="submit" class="danger">"Revoke"</button>
                </ActionForm>
            })}</td>
        </tr>
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let q = use_query_map();
    let filter = move || {
        let q = q.read();
        AuditFilter {
            actor: q.get("actor").filter(|s| !s.is_empty()),
            action: q.get("action").filter(|s| !s.is_empty()),
            before_id: q.get("before").and_then(|s| s.parse().ok()),
            limit: None,
        }
    };
    let page = Resource::new(filter, |f| audit_log(f.actor, f.action, f.before_id));
    view! {
        <Title text="Audit log"/>
        <h1>"Audit log"</h1>
        <SettingsTabs/>
        <form method="get" class="filters">
            <label>"Actor" <input type="text" name="actor" value=move || filter().actor.unwrap_or_default()/></label>
            <label>"Action starts with"
                <input type="text" name="action" placeholder="auth." value=move || filter().action.unwrap_or_default()/>
            </label>
            <button type="submit">"Filter"</button>
            <a href="/settings/audit">"Clear"</a>
        </form>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    Ok(p) => {
                        let f = filter();
                        let next = p.next_before_id.map(|id| {
                            let mut qs = format!("?before={id}");
                            if let Some(a) = &f.actor { qs.push_str(&format!("&actor={}", query_value(a))); }
                            if let Some(a) = &f.action { qs.push_str(&format!("&action={}", query_value(a))); }
                            qs
                        });
                        view! {
                            <div class="table-wrap">
                            <table class="data" id="audit-table">
                                <thead><tr>
                                    <th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Target"</th>
                                    <th>"Details"</th><th>"From"</th>
                                </tr></thead>
                                <tbody>
                                {p.entries.into_iter().map(|e| view! {
                                    <tr>
                                        <td><LocalTime at=e.at/></td>
                                        <td>{e.actor_name}</td>
                                        <td><code>{e.action}</code></td>
                                        <td>{e.target}</td>
                                        <td class="details">{e.details}</td>
                                        <td title=e.request_id>{e.client_ip}</td>
                                    </tr>
                                }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                            <Pager first=f.before_id.map(|_| "/settings/audit".to_string()) next=next end="End of the log."/>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
