//! The sign-in page. A plain HTML form posting to `/auth/login` (handled by the server
//! crate), so it works the same with or without wasm. Errors come back as a code in the
//! query string — never as free text, so a crafted link cannot put words on this page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

pub fn error_text(code: &str, retry_secs: Option<u64>) -> Option<String> {
    Some(match code {
        "invalid" => "Wrong username or password.".to_string(),
        "missing" => "Enter your username and password.".to_string(),
        "throttled" => {
            let mins = retry_secs.map(|s| s.div_ceil(60)).unwrap_or(15).max(1);
            format!(
                "Too many failed sign-in attempts. Try again in {mins} minute{}.",
                if mins == 1 { "" } else { "s" }
            )
        }
        "csrf" => "The sign-in form expired or came from another site. Try again.".to_string(),
        "server" => "Lookout could not check your password just now. Try again.".to_string(),
        _ => return None,
    })
}

/// Where to go after signing in: only a path on this site (no open redirects). The value is
/// resolved as a browser would resolve it against our origin — browsers drop tabs and
/// newlines inside URLs and read a backslash as a slash, so `/\t/evil.example` means
/// `//evil.example` to them — and accepted only when it stays on the same origin. Anything
/// with a control character or a backslash is refused outright. The answer is the resolved
/// path, query and fragment, normalised (percent-encoded) by the URL parser.
pub fn safe_next(next: Option<&str>) -> String {
    const BASE: &str = "http://lookout.invalid/";
    let Some(n) = next else {
        return "/".into();
    };
    if !n.starts_with('/') || n.len() > 2048 || n.chars().any(|c| c.is_control() || c == '\\') {
        return "/".into();
    }
    let Ok(base) = url::Url::parse(BASE) else {
        return "/".into();
    };
    match base.join(n) {
        Ok(u)
            if u.origin() == base.origin() && u.username().is_empty() && u.password().is_none() =>
        {
            u[url::Position::BeforePath..].to_string()
        }
        _ => "/".into(),
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let q = use_query_map();
    let next = move || safe_next(q.read().get("next").as_deref());
    let error = move || {
        let q = q.read();
        let retry = q.get("retry").and_then(|r| r.parse::<u64>().ok());
        q.get("error").and_then(|c| error_text(&c, retry))
    };
    let signed_out = move || q.read().get("signed_out").is_some();
    #[cfg(feature = "ssr")]
    if q.read_untracked().get("error").is_some() {
        crate::response::set_error_status(401);
    }
    view! {
        <Title text="Sign in"/>
        <main class="login">
            <form method="post" action="/auth/login" class="panel login-form">
                <h1>"Lookout"</h1>
                <p class="muted">"Sign in to the SRE console."</p>
                {move || error().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                {move || signed_out().then(|| view! { <p class="notice">"You are signed out."</p> })}
                <input type="hidden" name="next" value=next/>
                <label>"Username"
                    <input type="text" name="username" autocomplete="username" required autofocus/>
                </label>
                <label>"Password"
                    <input type="password" name="password" autocomplete="current-password" required/>
                </label>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_a_local_path() {
        let cases: &[(&str, &str)] = &[
            // Paths on this site pass through (normalised).
            ("/settings/users?x=1", "/settings/users?x=1"),
            ("/incidents/7#timeline", "/incidents/7#timeline"),
            ("/a/../b", "/b"),
            ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
            ("/%09/evil.example", "/%09/evil.example"),
            ("/@evil.example", "/@evil.example"),
            // Other origins, in the usual disguises.
            ("//evil.example/", "/"),
            ("///evil.example/", "/"),
            ("////evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("\\\\evil.example", "/"),
            ("/\\/evil.example", "/"),
            ("/\t/evil.example", "/"),
            ("/\n/evil.example", "/"),
            ("/\r\n/evil.example", "/"),
            ("/\t\t/evil.example", "/"),
            ("/\u{0}/evil.example", "/"),
            ("/\u{7f}/evil.example", "/"),
            (" //evil.example", "/"),
            ("\t//evil.example", "/"),
            ("https://evil.example/", "/"),
            ("http:evil.example", "/"),
            ("HTTPS://evil.example", "/"),
            ("javascript:alert(1)", "/"),
            ("data:text/html,<script>alert(1)</script>", "/"),
            ("%2F%2Fevil.example", "/"),
            ("evil.example", "/"),
            ("", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(safe_next(Some(input)), *want, "next={input:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(5000)))), "/");
    }

    #[test]
    fn error_codes_map_to_fixed_text() {
        assert_eq!(
            error_text("invalid", None).as_deref(),
            Some("Wrong username or password.")
        );
        assert!(
            error_text("throttled", Some(61))
                .unwrap()
                .contains("2 minutes")
        );
        assert!(
            error_text("throttled", Some(30))
                .unwrap()
                .contains("1 minute.")
        );
        assert_eq!(error_text("<script>", None), None);
    }
}
