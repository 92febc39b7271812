//! The 404 page for unknown routes (with a real 404 status).

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::response::set_error_status(404);
    view! {
        <Title text="Not found"/>
        <main class="login">
            <section class="panel">
                <h1>"404 — page not found"</h1>
                <p>"There is nothing at this address in Lookout."</p>
                <p><a href="/">"Go to the start page"</a></p>
            </section>
        </main>
    }
}
