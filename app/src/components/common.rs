//! Small shared views: error panels, empty states, page headers.

use crate::error::AppError;
use leptos::prelude::*;

/// Shows an error from a server function. A 403 becomes a clear "not allowed" panel.
#[component]
pub fn ErrorPanel(error: AppError) -> impl IntoView {
    let title = match error.status {
        401 => "Signed out",
        403 => "403 — not allowed",
        404 => "Not found",
        429 => "Slow down",
        0 => "Connection problem",
        s if s >= 500 => "Something went wrong",
        _ => "That did not work",
    };
    view! {
        <section class="panel error" role="alert" data-status=error.status>
            <h2>{title}</h2>
            <p>{error.message}</p>
        </section>
    }
}

/// The inline result of a form action: the error message, or nothing.
#[component]
pub fn FormError(error: Option<AppError>) -> impl IntoView {
    error.map(|e| view! { <p class="form-error" role="alert">{e.message}</p> })
}

/// An honest empty state: what will be here, and why it isn't yet.
#[component]
pub fn EmptyState(
    #[prop(into)] title: String,
    #[prop(into)] what: String,
    #[prop(into)] status: String,
) -> impl IntoView {
    view! {
        <section class="panel empty-state">
            <h2>{title}</h2>
            <p>{what}</p>
            <p class="muted">{status}</p>
        </section>
    }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" aria-busy="true">"Loading…"</p> }
}

/// Keyset paging links: back to the first page, and on to the next one.
#[component]
pub fn Pager(
    first: Option<String>,
    next: Option<String>,
    #[prop(into)] end: String,
) -> impl IntoView {
    view! {
        <p class="pager">
            {first.map(|href| view! { <a href=href>"← First page"</a> " · " })}
            {match next {
                Some(href) => view! { <a href=href rel="next">"Next page →"</a> }.into_any(),
                None => view! { <span class="muted">{end}</span> }.into_any(),
            }}
        </p>
    }
}

/// Percent-encodes a query-string value.
pub fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
