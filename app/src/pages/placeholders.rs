//! Sections that later work fills. Each says plainly what will be here; none shows
//! invented data.

use crate::components::common::EmptyState;
use leptos::prelude::*;
use leptos_meta::Title;

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
