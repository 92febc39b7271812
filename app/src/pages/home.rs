//! The start page: the three jobs Lookout is for, and where each stands.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text=""/>
        <h1>"Lookout"</h1>
        <p class="lead">"The SRE console for incidents, deployment sign-off and LLM cost review."</p>
        <div class="cards">
            <a class="card" href="/incidents">
                <h2>"Investigate an incident"</h2>
                <p>"Open an incident, run probes against the systems involved, keep findings on the timeline, export the postmortem."</p>
            </a>
            <a class="card" href="/deployments">
                <h2>"Sign off a deployment"</h2>
                <p>"Checklists checked by people and probes, signed by approvers, used by CI as a gate."</p>
            </a>
            <a class="card" href="/costs">
                <h2>"Review LLM costs"</h2>
                <p>"Spend by provider, model, feature and tenant, with week-over-week explanations."</p>
            </a>
            <a class="card" href="/kafka">
                <h2>"Kafka consumer lag"</h2>
                <p>"Lag graphs and verdicts for every consumer group."</p>
            </a>
        </div>
    }
}
