//! What a rendered page or server-function call puts on its HTTP response (server only):
//! its status, and the Content-Security-Policy of pages (which the server applies with the
//! nonce it gave the render: `server::headers`).

use leptos::prelude::*;

/// Sets the response status of the current page or server-function call. Plain HTML form
/// posts (no wasm) are left alone: they are answered with a redirect back to the form,
/// carrying the error in the URL, and a non-3xx status would break that redirect.
pub fn set_error_status(status: u16) {
    let Some(opts) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    if is_plain_form_post() {
        return;
    }
    if let Ok(code) = http::StatusCode::from_u16(status) {
        opts.set_status(code);
    }
}

fn is_plain_form_post() -> bool {
    use_context::<http::request::Parts>().is_some_and(|p| {
        p.method == http::Method::POST
            && p.headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
    })
}

/// The Content-Security-Policy of a rendered page: scripts only from this origin or with this
/// response's nonce (Leptos puts it on the hydration script and on every resource chunk it
/// streams), wasm compilation allowed for the bundle, no plugins, no framing, forms only to
/// this origin. Inline `style` attributes (the SVG charts) are allowed; inline script is not.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}
