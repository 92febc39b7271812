//! The shell every signed-in page shares: the navigation, who is signed in, sign-out.

use crate::account_fns::whoami;
use leptos::prelude::*;
use leptos_router::components::{A, Outlet};

#[component]
pub fn Layout() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <div class="app">
            <header class="topbar">
                <a class="brand" href="/">"Lookout"</a>
                <input type="checkbox" id="nav-toggle" class="nav-toggle" aria-label="Show navigation"/>
                <label for="nav-toggle" class="nav-toggle-label" aria-hidden="true">"☰"</label>
                <nav class="nav" aria-label="Main">
                    <A href="/incidents">"Incidents"</A>
                    <A href="/deployments">"Deployments"</A>
                    <A href="/kafka">"Kafka"</A>
                    <A href="/costs">"LLM costs"</A>
                    <A href="/targets">"Targets"</A>
                    <A href="/settings">"Settings"</A>
                </nav>
                <div class="whoami">
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            me.await.ok().map(|p| view! {
                                <A href="/account" attr:class="user" attr:title="Your account">
                                    <span class="username">{p.name.clone()}</span>
                                    <span class=format!("role role-{}", p.role)>{p.role.to_string()}</span>
                                </A>
                            })
                        })}
                    </Suspense>
                    <form method="post" action="/auth/logout" class="logout">
                        <button type="submit" class="link">"Sign out"</button>
                    </form>
                </div>
            </header>
            // Notices of forms sent in place (`components::enhance`), outside the part it re-renders.
            <div id="flash" role="status" aria-live="polite"></div>
            <main class="content">
                <Outlet/>
            </main>
        </div>
    }
}
