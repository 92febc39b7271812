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

/// Text for an element whose content Leptos writes into the server-rendered HTML without
/// escaping: a `<textarea>`'s children (the element is treated like `<script>`) and the
/// document `<title>` (leptos_meta). Unescaped, a stored `</textarea><img onerror=…>` or a
/// group name in the URL like `</title><img onerror=…>` would end the element and become
/// markup. On the server the text is escaped here (both elements decode character
/// references, so the user sees their own text); in the browser the text is set as a text
/// node or `document.title`, which is never markup, so it is left as it is.
pub fn raw_element_text(text: &str) -> String {
    #[cfg(feature = "ssr")]
    {
        let mut out = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            }
        }
        out
    }
    #[cfg(not(feature = "ssr"))]
    {
        text.to_string()
    }
}

/// A page title made from the route's parameters. The server reads a page's title after
/// the body is rendered, and under load that could happen after the route's reactive owner
/// was disposed: reading `params` then panicked and the page was a 500 (found by the load
/// bench, docs/testing.md). The title follows the parameters while they are live and falls
/// back to the ones the page was rendered with.
pub fn param_title(
    params: Memo<leptos_router::params::ParamsMap>,
    make: impl Fn(&leptos_router::params::ParamsMap) -> String + Send + Sync + 'static,
) -> impl Fn() -> String + Send + Sync + 'static {
    let initial = params.with_untracked(&make);
    move || params.try_with(&make).unwrap_or_else(|| initial.clone())
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn raw_element_text_cannot_end_the_element() {
        let cases = [
            ("plain note", "plain note"),
            (
                "</textarea><img src=x onerror=alert(1)>",
                "&lt;/textarea&gt;&lt;img src=x onerror=alert(1)&gt;",
            ),
            ("</TEXTAREA >", "&lt;/TEXTAREA &gt;"),
            ("a &lt; b & c", "a &amp;lt; b &amp; c"),
            ("\"quoted\" 'single'", "\"quoted\" 'single'"),
        ];
        for (input, want) in cases {
            assert_eq!(raw_element_text(input), want, "{input:?}");
        }
    }
}
