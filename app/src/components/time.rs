//! Times are stored and sent in UTC. The server renders UTC (it cannot know the viewer's
//! zone); once hydrated, the browser rewrites the text in the viewer's zone. The UTC time
//! stays in the tooltip and in the `datetime` attribute.

use leptos::prelude::*;
use time::OffsetDateTime;
use time::macros::format_description;

pub fn utc_text(at: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

#[cfg(feature = "hydrate")]
fn local_text(at: OffsetDateTime) -> Option<String> {
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as f64;
    let date = js_sys::Date::new(&wasm_bindgen_ms(ms));
    // getTimezoneOffset() is minutes *behind* UTC.
    let offset_min = -(date.get_timezone_offset() as i32);
    let offset = time::UtcOffset::from_whole_seconds(offset_min * 60).ok()?;
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let text = at.to_offset(offset).format(&f).ok()?;
    let (h, m) = (offset_min / 60, (offset_min % 60).abs());
    Some(if m == 0 {
        format!("{text} (UTC{h:+})")
    } else {
        format!("{text} (UTC{h:+}:{m:02})")
    })
}

#[cfg(feature = "hydrate")]
fn wasm_bindgen_ms(ms: f64) -> leptos::wasm_bindgen::JsValue {
    leptos::wasm_bindgen::JsValue::from_f64(ms)
}

/// A time shown in the viewer's zone (after hydration), UTC on hover.
#[component]
pub fn LocalTime(at: OffsetDateTime) -> impl IntoView {
    let utc = utc_text(at);
    let iso = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = RwSignal::new(utc.clone());
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(local) = local_text(at) {
            text.set(local);
        }
    });
    view! { <time datetime=iso title=utc>{move || text.get()}</time> }
}

/// Like [`LocalTime`] but for optional times ("never" when absent).
#[component]
pub fn MaybeTime(at: Option<OffsetDateTime>, #[prop(into)] none: String) -> impl IntoView {
    match at {
        Some(at) => view! { <LocalTime at/> }.into_any(),
        None => view! { <span class="muted">{none}</span> }.into_any(),
    }
}
