//! Times are stored and sent in UTC. The server renders UTC (it cannot know the viewer's
//! zone); once the page is enhanced, the browser rewrites the text in the viewer's zone.
//! The UTC time stays in the tooltip and in the `datetime` attribute.

use leptos::prelude::*;
use time::OffsetDateTime;
use time::macros::format_description;

pub fn utc_text(at: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// A time: UTC as rendered, in the viewer's zone once the page is enhanced
/// (`components::enhance` rewrites every `<time datetime>`), UTC on hover.
#[component]
pub fn LocalTime(at: OffsetDateTime) -> impl IntoView {
    let utc = utc_text(at);
    let iso = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let title = utc.clone();
    view! { <time datetime=iso title=title>{utc}</time> }
}

/// Like [`LocalTime`] but for optional times ("never" when absent).
#[component]
pub fn MaybeTime(at: Option<OffsetDateTime>, #[prop(into)] none: String) -> impl IntoView {
    match at {
        Some(at) => view! { <LocalTime at/> }.into_any(),
        None => view! { <span class="muted">{none}</span> }.into_any(),
    }
}
