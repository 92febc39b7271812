//! Lookout's browser UI: the HTML shell, the routes, pages, components and the server
//! functions they call. Compiled twice: with `ssr` into the server (rendering and server
//! functions run there) and with `hydrate` into wasm (the same components take over the page).
//! Server-only code sits behind `#[cfg(feature = "ssr")]` and never reaches the wasm build.
#![recursion_limit = "256"]

pub mod account_fns;
pub mod components;
pub mod cost_fns;
pub mod deployment_fns;
pub mod error;
pub mod incident_fns;
pub mod kafka_fns;
pub mod pages;
pub mod probe_fns;
#[cfg(feature = "ssr")]
pub mod response;
#[cfg(feature = "ssr")]
pub mod state;
pub mod target_fns;

use components::layout::Layout;
use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, Link, Meta, MetaTags, Title, provide_meta_context};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{SsrMode, path};

/// In context when the page is rendered as the answer to a plain HTML form post: the
/// browser has no wasm running, and the page shows things (a new token's secret) that a
/// hydrating client could not reproduce.
#[derive(Clone, Copy, Debug)]
pub struct NoHydrate;

/// The browser side: sets up the reactive root the islands (`components::enhance`) hydrate
/// into. Called by the wasm entry point (the `frontend` crate).
#[cfg(feature = "hydrate")]
pub fn hydrate_islands() {
    leptos::mount::hydrate_islands();
}

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                // The stylesheet by its content-hashed name when the build hashed it (cargo-leptos
                // `hash-files`; `server::leptos_options` turns it on when hash.txt is there).
                <HashedStylesheet options=options.clone() id="leptos"/>
                // Islands: only `Enhance` is hydrated, so no page data is serialised for the
                // browser. A page rendered as the answer to a plain form post (no wasm) gets
                // no scripts at all.
                {match use_context::<NoHydrate>() {
                    None => Some(view! { <HydrationScripts options islands=true/> }),
                    Some(_) => {
                        if let Some(sc) = Owner::current_shared_context() {
                            sc.set_is_hydrating(false);
                        }
                        None
                    }
                }}
                <MetaTags/>
            </head>
            <body>
                <App/>
                {use_context::<NoHydrate>().is_none().then(|| view! { <components::enhance::Enhance/> })}
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Link rel="icon" type_="image/svg+xml" href="/static/favicon.svg"/>
        <Meta name="color-scheme" content="light dark"/>
        // The title is written unescaped by leptos_meta on the server: escape it (it can hold
        // text from the URL, e.g. a Kafka group name).
        <Title formatter=|t: String| if t.is_empty() { "Lookout".to_string() } else { format!("{} · Lookout", components::common::raw_element_text(&t)) }/>
        <Router>
            <Routes fallback=pages::not_found::NotFound>
                <Route path=path!("/login") view=pages::login::LoginPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=Layout ssr=SsrMode::Async>
                    <Route path=path!("") view=pages::home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("incidents") view=pages::incidents::IncidentListPage ssr=SsrMode::Async/>
                    <Route path=path!("incidents/new") view=pages::incidents::NewIncidentPage ssr=SsrMode::Async/>
                    <Route path=path!("incidents/:key") view=pages::incidents::IncidentPage ssr=SsrMode::Async/>
                    <Route path=path!("incidents/:key/findings/:id") view=pages::incidents::FindingPage ssr=SsrMode::Async/>
                    <Route path=path!("deployments") view=pages::deployments::DeploymentsPage ssr=SsrMode::Async/>
                    <Route path=path!("deployments/new") view=pages::deployments::NewDeploymentPage ssr=SsrMode::Async/>
                    <Route path=path!("deployments/templates/new") view=pages::deployments::NewTemplatePage ssr=SsrMode::Async/>
                    <Route path=path!("deployments/templates/:id") view=pages::deployments::TemplatePage ssr=SsrMode::Async/>
                    <Route path=path!("deployments/:key") view=pages::deployments::DeploymentPage ssr=SsrMode::Async/>
                    <Route path=path!("kafka") view=pages::kafka::KafkaIndex ssr=SsrMode::Async/>
                    <Route path=path!("kafka/:target") view=pages::kafka::KafkaTargetPage ssr=SsrMode::Async/>
                    <Route path=path!("kafka/:target/groups/:group") view=pages::kafka::KafkaGroupPage ssr=SsrMode::Async/>
                    <Route path=path!("kafka/:target/topics/:topic") view=pages::kafka::KafkaTopicPage ssr=SsrMode::Async/>
                    <Route path=path!("costs") view=pages::costs::CostsPage ssr=SsrMode::Async/>
                    <Route path=path!("costs/traces/:trace") view=pages::costs::CostTracePage ssr=SsrMode::Async/>
                    <Route path=path!("costs/prices") view=pages::costs::PricesPage ssr=SsrMode::Async/>
                    <Route path=path!("targets") view=pages::targets::TargetsPage ssr=SsrMode::Async/>
                    <Route path=path!("kubernetes/manifests") view=pages::manifests::ManifestsPage ssr=SsrMode::Async/>
                    <Route path=path!("targets/:id") view=pages::targets::TargetPage ssr=SsrMode::Async/>
                    <Route path=path!("probe-runs/:id") view=pages::probe_runs::ProbeRunPage ssr=SsrMode::Async/>
                    <Route path=path!("account") view=pages::account::AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("settings") view=pages::settings::SettingsIndex ssr=SsrMode::Async/>
                    <Route path=path!("settings/users") view=pages::settings::UsersPage ssr=SsrMode::Async/>
                    <Route path=path!("settings/tokens") view=pages::settings::TokensPage ssr=SsrMode::Async/>
                    <Route path=path!("settings/audit") view=pages::settings::AuditPage ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
