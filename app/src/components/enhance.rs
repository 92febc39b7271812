//! The one island: progressive enhancement of the server-rendered page.
//!
//! Lookout renders every page on the server, and every page works without JavaScript: forms
//! post to their server function, which answers a browser with a redirect back to the page.
//! The app runs in Leptos *islands* mode, and the only hydrated part is [`Enhance`], which
//! sits at the end of every page and adds, for the whole document at once (event
//! delegation, so content it swaps in works at once):
//!
//! - **forms in place**: a `POST` form to a server function (`/api/fn/…`) is sent with
//!   `fetch`; an error is shown under the form and nothing else changes; on success the
//!   page's `<main>` is re-rendered from the server (what the user typed in *other* forms
//!   and the open/closed state of `<details>` are kept), a redirect is followed, and a few
//!   `data-` attributes on the form add a notice (`data-done="Added {name}."`, filled from
//!   the answer's fields), a target page (`data-then="/probe-runs/{id}"`), a pending text
//!   (`data-pending`) or a rendered result (`data-result="connection-test"`);
//! - **forms answered with a page** (`data-enhance="page"`: token creation, whose secret is
//!   shown once): posted with `fetch`, the answer's `<main>` shown, the address unchanged;
//! - **live pages**: an element with `data-stream="/api/v1/…/stream"` subscribes to those
//!   server-sent events (`data-stream-ready="refresh"`: re-render as soon as it is open
//!   too) and `data-refresh-every="15"` polls; either re-renders `<main>`, but never while
//!   the viewer is typing in it (it waits until the field loses focus);
//! - **small things**: times shown in the viewer's zone (`<time datetime>`), sortable
//!   tables, copy buttons (`data-copy`), the note preview, the postmortem copy, and the
//!   probe-parameter panels following the probe chosen.
//!
//! Why one behaviour island rather than hydrating the pages (measured; BENCHMARKS.md "Page
//! weight"): hydrating the whole app cost a 3.1 MB wasm (0.83 MB brotli) — the renderer's
//! code for every view shape of every page — and sent each page's data twice (as HTML and
//! as JSON for hydration). Here the wasm holds this file and little else, and the HTML is
//! sent once.

use leptos::prelude::*;

/// Rendered once at the end of every page (see `crate::shell`).
#[island]
pub fn Enhance() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    behaviour::install();
}

#[cfg(feature = "hydrate")]
mod behaviour {
    use crate::components::sortable::sort_key;
    use std::cell::RefCell;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};
    use web_sys::{
        Document, Element, Event, EventSource, FormData, HtmlFormElement, HtmlInputElement,
        HtmlSelectElement, HtmlTextAreaElement, RequestInit, Response, UrlSearchParams,
    };

    const FN_PREFIX: &str = "/api/fn/";

    #[derive(Default)]
    struct State {
        streams: Vec<(String, EventSource)>,
        interval: Option<(u32, i32)>,
        /// A live refresh is waiting for the viewer to leave a field.
        deferred: bool,
        /// A refresh is running; another one was asked for meanwhile.
        running: bool,
        again: bool,
        /// The timer of a scheduled refresh.
        timer: Option<i32>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::new(State::default());
    }

    fn window() -> web_sys::Window {
        web_sys::window().expect("a browser window")
    }

    fn document() -> Document {
        window().document().expect("a document")
    }

    fn listen(target: &web_sys::EventTarget, name: &str, f: impl FnMut(Event) + 'static) {
        let cb = Closure::<dyn FnMut(Event)>::new(f);
        let _ = target.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
        cb.forget();
    }

    fn set_global(name: &str, value: &JsValue) {
        let _ = js_sys::Reflect::set(&js_sys::global(), &JsValue::from_str(name), value);
    }

    pub fn install() {
        let doc = document();
        listen(&doc, "submit", on_submit);
        listen(&doc, "click", on_click);
        listen(&doc, "change", on_change);
        listen(&doc, "focusout", |_| {
            let deferred = STATE.with(|s| std::mem::take(&mut s.borrow_mut().deferred));
            if deferred {
                schedule_refresh(200);
            }
        });
        if let Some(body) = doc.body() {
            localize_times(&body);
        }
        sync_live();
        // End-to-end tests wait for this before they click.
        set_global("__lookoutHydrated", &JsValue::TRUE);
    }

    // ---- forms ------------------------------------------------------------------------

    fn on_submit(ev: Event) {
        let Some(form) = ev
            .target()
            .and_then(|t| t.dyn_into::<HtmlFormElement>().ok())
        else {
            return;
        };
        let action = form.get_attribute("action").unwrap_or_default();
        let post = form
            .get_attribute("method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post"));
        let page_form = form.get_attribute("data-enhance").as_deref() == Some("page");
        if !post || !(action.starts_with(FN_PREFIX) || page_form) {
            return; // posts natively (sign-in, exports)
        }
        ev.prevent_default();
        if form.get_attribute("aria-busy").as_deref() == Some("true") {
            return; // a second click while the first is on its way
        }
        let Ok(data) = FormData::new_with_form(&form) else {
            return;
        };
        if page_form && form.enctype().eq_ignore_ascii_case("multipart/form-data") {
            // A form with a file: sent as the browser would (multipart, the file's bytes).
            busy(&form, true);
            leptos::task::spawn_local(post_page(form, action, Body::Multipart(data)));
            return;
        }
        let Ok(params) = UrlSearchParams::new_with_str_sequence_sequence(&data) else {
            return;
        };
        let body = String::from(params.to_string());
        busy(&form, true);
        if let Some(text) = form.get_attribute("data-pending") {
            message(&form, "loading", &text);
        }
        if page_form {
            leptos::task::spawn_local(post_page(form, action, Body::Form(body)));
            return;
        }
        leptos::task::spawn_local(async move {
            let answer = request(&action, "POST", Some(&body), "application/json").await;
            busy(&form, false);
            let (status, headers, text) = match answer {
                Ok(a) => a,
                Err(()) => {
                    message(
                        &form,
                        "form-error",
                        "Could not reach the Lookout server. Check the connection and try again.",
                    );
                    return;
                }
            };
            if status >= 400 {
                message(&form, "form-error", &error_message(status, &text));
                return;
            }
            if headers.has("serverfnredirect").unwrap_or(false)
                && let Ok(Some(to)) = headers.get("location")
            {
                go(&to);
                return;
            }
            let json = js_sys::JSON::parse(&text).unwrap_or(JsValue::NULL);
            if let Some(template) = form.get_attribute("data-then") {
                go(&fill(&template, &json));
                return;
            }
            clear_message(&form);
            if form.get_attribute("data-result").as_deref() == Some("connection-test") {
                show_connection_test(&form, &json);
                return;
            }
            if let Some(template) = form.get_attribute("data-done") {
                flash(&fill(&template, &json));
            }
            refresh(Some(form)).await;
        });
    }

    /// A form the server answers with a page (`data-enhance="page"`, e.g. token creation,
    /// whose secret is shown once and stored nowhere): the answer's `<main>` replaces this
    /// one, and the address stays the page's own, so reloading it does not post again.
    /// A form's body: url-encoded text, or the form's own data (multipart, with its files).
    enum Body {
        Form(String),
        Multipart(FormData),
    }

    async fn post_page(form: HtmlFormElement, action: String, body: Body) {
        let answer = match body {
            Body::Form(b) => request(&action, "POST", Some(&b), "text/html").await,
            Body::Multipart(data) => request_multipart(&action, &data, "text/html").await,
        };
        busy(&form, false);
        match answer {
            Ok((_, _, html)) => {
                if !swap_main(&html, None) {
                    message(
                        &form,
                        "form-error",
                        "The server's answer could not be shown. Reload the page.",
                    );
                }
            }
            Err(()) => message(
                &form,
                "form-error",
                "Could not reach the Lookout server. Check the connection and try again.",
            ),
        }
    }

    fn busy(form: &HtmlFormElement, on: bool) {
        let _ = form.set_attribute("aria-busy", if on { "true" } else { "false" });
        if let Ok(buttons) = form.query_selector_all("button[type=submit], button:not([type])") {
            for i in 0..buttons.length() {
                if let Some(b) = buttons.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                    if on {
                        let _ = b.set_attribute("disabled", "");
                    } else {
                        let _ = b.remove_attribute("disabled");
                    }
                }
            }
        }
    }

    /// The message line under a form (created on first use).
    fn slot(form: &HtmlFormElement) -> Option<Element> {
        if let Some(next) = form.next_element_sibling()
            && next.class_list().contains("enhance-msg")
        {
            return Some(next);
        }
        let p = document().create_element("p").ok()?;
        let _ = form.after_with_node_1(&p);
        Some(p)
    }

    fn message(form: &HtmlFormElement, class: &str, text: &str) {
        if let Some(p) = slot(form) {
            p.set_class_name(&format!("enhance-msg {class}"));
            let _ = p.set_attribute(
                "role",
                if class == "form-error" {
                    "alert"
                } else {
                    "status"
                },
            );
            p.set_text_content(Some(text));
        }
    }

    fn clear_message(form: &HtmlFormElement) {
        if let Some(next) = form.next_element_sibling()
            && next.class_list().contains("enhance-msg")
        {
            next.remove();
        }
    }

    /// The message of an `AppError` answer, or a plain one.
    fn error_message(status: u16, text: &str) -> String {
        js_sys::JSON::parse(text)
            .ok()
            .and_then(|v| js_sys::Reflect::get(&v, &"message".into()).ok())
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| format!("The server answered {status}."))
    }

    /// `"Added {name}."` with `{name}` taken from the answer's fields (strings or numbers).
    pub(super) fn fill(template: &str, json: &JsValue) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            out.push_str(&rest[..start]);
            let key = &rest[start + 1..start + len];
            let v = js_sys::Reflect::get(json, &key.into()).unwrap_or(JsValue::UNDEFINED);
            if let Some(s) = v.as_string() {
                out.push_str(&s);
            } else if let Some(n) = v.as_f64() {
                out.push_str(&n.to_string());
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }

    fn flash(text: &str) {
        if let Some(f) = document().get_element_by_id("flash") {
            f.set_text_content(Some(text));
            let _ = f.set_attribute("class", "notice flash");
        }
    }

    fn go(to: &str) {
        // Only paths of this site (a redirect from our own server, or our own template).
        if to.starts_with('/') && !to.starts_with("//") {
            let _ = window().location().assign(to);
        }
    }

    /// The answer of `targets/test`: `[target_id, {ok, summary, facts: [[k, v]…]}]`.
    fn show_connection_test(form: &HtmlFormElement, json: &JsValue) {
        let doc = document();
        let into = form
            .get_attribute("data-result-into")
            .and_then(|sel| doc.query_selector(&sel).ok().flatten())
            .or_else(|| slot(form));
        let Some(into) = into else { return };
        let id = js_sys::Reflect::get(json, &0.into()).unwrap_or(JsValue::NULL);
        let t = js_sys::Reflect::get(json, &1.into()).unwrap_or(JsValue::NULL);
        let get = |k: &str| js_sys::Reflect::get(&t, &k.into()).unwrap_or(JsValue::NULL);
        let ok = get("ok").as_bool().unwrap_or(false);
        let Ok(section) = doc.create_element("section") else {
            return;
        };
        section.set_class_name(if ok {
            "panel notice test-result"
        } else {
            "panel error test-result"
        });
        let _ = section.set_attribute("role", "status");
        let _ = section.set_attribute("id", "test-result");
        let _ = section.set_attribute(
            "data-target",
            &id.as_f64().map(|n| n.to_string()).unwrap_or_default(),
        );
        if let Ok(strong) = doc.create_element("strong") {
            strong.set_text_content(Some(if ok { "Connected: " } else { "Failed: " }));
            let _ = section.append_with_node_1(&strong);
        }
        let _ = section.append_with_str_1(&get("summary").as_string().unwrap_or_default());
        let facts = js_sys::Array::from(&get("facts"));
        if facts.length() > 0
            && let Ok(ul) = doc.create_element("ul")
        {
            ul.set_class_name("plain");
            for pair in facts.iter() {
                let pair = js_sys::Array::from(&pair);
                let (Ok(li), Ok(code)) = (doc.create_element("li"), doc.create_element("code"))
                else {
                    continue;
                };
                code.set_text_content(pair.get(0).as_string().as_deref());
                let _ = li.append_with_node_1(&code);
                let _ = li.append_with_str_1(&format!(
                    ": {}",
                    pair.get(1).as_string().unwrap_or_default()
                ));
                let _ = ul.append_with_node_1(&li);
            }
            let _ = section.append_with_node_1(&ul);
        }
        // A result replaces the previous one.
        if into.class_list().contains("enhance-msg") {
            into.set_class_name("enhance-msg");
            let _ = into.remove_attribute("role");
            into.set_text_content(None);
        } else {
            into.set_text_content(None);
        }
        let _ = into.append_with_node_1(&section);
    }

    async fn request(
        url: &str,
        method: &str,
        body: Option<&str>,
        accept: &str,
    ) -> Result<(u16, web_sys::Headers, String), ()> {
        let init = RequestInit::new();
        init.set_method(method);
        let headers = web_sys::Headers::new().map_err(|_| ())?;
        headers.set("Accept", accept).map_err(|_| ())?;
        if let Some(b) = body {
            headers
                .set("Content-Type", "application/x-www-form-urlencoded")
                .map_err(|_| ())?;
            init.set_body(&JsValue::from_str(b));
        }
        init.set_headers(&headers);
        send(url, &init).await
    }

    /// Fetches and reads the answer's status, headers and text.
    async fn send(url: &str, init: &RequestInit) -> Result<(u16, web_sys::Headers, String), ()> {
        let resp =
            wasm_bindgen_futures::JsFuture::from(window().fetch_with_str_and_init(url, init))
                .await
                .map_err(|_| ())?;
        let resp: Response = resp.dyn_into().map_err(|_| ())?;
        let text = wasm_bindgen_futures::JsFuture::from(resp.text().map_err(|_| ())?)
            .await
            .map_err(|_| ())?
            .as_string()
            .unwrap_or_default();
        Ok((resp.status(), resp.headers(), text))
    }

    /// A multipart POST of a form's data (the browser writes the boundary and the files).
    async fn request_multipart(
        url: &str,
        data: &FormData,
        accept: &str,
    ) -> Result<(u16, web_sys::Headers, String), ()> {
        let init = RequestInit::new();
        init.set_method("POST");
        let headers = web_sys::Headers::new().map_err(|_| ())?;
        headers.set("Accept", accept).map_err(|_| ())?;
        init.set_headers(&headers);
        init.set_body(data.as_ref());
        send(url, &init).await
    }

    // ---- re-rendering the page --------------------------------------------------------

    fn schedule_refresh(delay_ms: i32) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.timer.is_some() {
                return;
            }
            let cb = Closure::once_into_js(move || {
                STATE.with(|s| s.borrow_mut().timer = None);
                live_refresh();
            });
            s.timer = window()
                .set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), delay_ms)
                .ok();
        });
    }

    /// A refresh the viewer did not ask for: never while they type in the page.
    fn live_refresh() {
        if typing() {
            STATE.with(|s| s.borrow_mut().deferred = true);
            return;
        }
        let busy = STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.running {
                s.again = true;
            }
            s.running
        });
        if !busy {
            leptos::task::spawn_local(refresh(None));
        }
    }

    fn typing() -> bool {
        document().active_element().is_some_and(|e| {
            let tag = e.tag_name().to_ascii_lowercase();
            let text_input = e.dyn_ref::<HtmlInputElement>().is_some_and(|i| {
                !matches!(
                    i.type_().as_str(),
                    "submit" | "button" | "checkbox" | "radio" | "hidden"
                )
            });
            e.closest("main").ok().flatten().is_some()
                && (tag == "textarea" || tag == "select" || text_input)
        })
    }

    /// Re-renders `<main>` from the server. `submitted` is the form that just succeeded: its
    /// fields start afresh; what was typed in the others is kept.
    async fn refresh(submitted: Option<HtmlFormElement>) {
        STATE.with(|s| s.borrow_mut().running = true);
        let href = window().location().href().unwrap_or_default();
        if let Ok((200, _, html)) = request(&href, "GET", None, "text/html").await {
            swap_main(&html, submitted.as_ref());
        }
        let again = STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.running = false;
            std::mem::take(&mut s.again)
        });
        if again {
            schedule_refresh(100);
        }
    }

    /// Puts the `<main>` of a page's HTML in place of this one (see [`refresh`]).
    fn swap_main(html: &str, submitted: Option<&HtmlFormElement>) -> bool {
        let Ok(parser) = web_sys::DomParser::new() else {
            return false;
        };
        let Ok(fresh) = parser.parse_from_string(html, web_sys::SupportedType::TextHtml) else {
            return false;
        };
        let (Ok(Some(new_main)), Ok(Some(main))) = (
            fresh.query_selector("main.content"),
            document().query_selector("main.content"),
        ) else {
            return false;
        };
        let open = open_details(&main);
        let typed = typed_values(&main, submitted);
        main.set_inner_html(&new_main.inner_html());
        document().set_title(&fresh.title());
        reopen_details(&main, &open);
        restore_values(&main, &typed);
        localize_times(&main);
        sync_live();
        true
    }

    fn each(root: &Element, selector: &str, mut f: impl FnMut(Element)) {
        if let Ok(list) = root.query_selector_all(selector) {
            for i in 0..list.length() {
                if let Some(e) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                    f(e);
                }
            }
        }
    }

    /// `<details>` are told apart by their summary's text and its rank among equal ones.
    fn details_keys(root: &Element) -> Vec<(String, Element)> {
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        each(root, "details", |d| {
            let summary = d
                .query_selector("summary")
                .ok()
                .flatten()
                .and_then(|s| s.text_content())
                .unwrap_or_default();
            let rank = seen.iter().filter(|s| **s == summary).count();
            seen.push(summary.clone());
            out.push((format!("{rank}:{summary}"), d));
        });
        out
    }

    fn open_details(root: &Element) -> Vec<(String, bool)> {
        details_keys(root)
            .into_iter()
            .map(|(k, d)| (k, d.has_attribute("open")))
            .collect()
    }

    fn reopen_details(root: &Element, open: &[(String, bool)]) {
        for (k, d) in details_keys(root) {
            if let Some((_, was_open)) = open.iter().find(|(o, _)| *o == k) {
                let _ = if *was_open {
                    d.set_attribute("open", "")
                } else {
                    d.remove_attribute("open")
                };
            }
        }
    }

    /// A field's key: its form's action and id, its name and its rank among same names.
    fn field_keys(root: &Element) -> Vec<(String, Element)> {
        let mut out = Vec::new();
        each(root, "form", |form| {
            let prefix = format!(
                "{}|{}",
                form.get_attribute("action").unwrap_or_default(),
                form.id()
            );
            let mut seen: Vec<String> = Vec::new();
            each(&form, "input[name], textarea[name], select[name]", |f| {
                let name = f.get_attribute("name").unwrap_or_default();
                let rank = seen.iter().filter(|s| **s == name).count();
                seen.push(name.clone());
                out.push((format!("{prefix}|{name}|{rank}"), f));
            });
        });
        out
    }

    enum Typed {
        Text(String),
        Checked(bool),
    }

    fn typed_values(root: &Element, skip: Option<&HtmlFormElement>) -> Vec<(String, Typed)> {
        let skip_prefix = skip.map(|f| {
            format!(
                "{}|{}|",
                f.get_attribute("action").unwrap_or_default(),
                f.id()
            )
        });
        field_keys(root)
            .into_iter()
            .filter(|(k, _)| {
                skip_prefix
                    .as_ref()
                    .is_none_or(|p| !k.starts_with(p.as_str()))
            })
            .filter_map(|(k, f)| {
                if let Some(i) = f.dyn_ref::<HtmlInputElement>() {
                    return match i.type_().as_str() {
                        "hidden" | "submit" | "button" => None,
                        "checkbox" | "radio" => (i.checked() != i.default_checked())
                            .then(|| (k, Typed::Checked(i.checked()))),
                        _ => (i.value() != i.default_value()).then(|| (k, Typed::Text(i.value()))),
                    };
                }
                if let Some(t) = f.dyn_ref::<HtmlTextAreaElement>() {
                    return (Ok(t.value()) != t.default_value())
                        .then(|| (k, Typed::Text(t.value())));
                }
                if let Some(s) = f.dyn_ref::<HtmlSelectElement>() {
                    let changed = s
                        .selected_options()
                        .item(0)
                        .and_then(|o| o.dyn_into::<web_sys::HtmlOptionElement>().ok())
                        .is_some_and(|o| !o.default_selected());
                    return changed.then(|| (k, Typed::Text(s.value())));
                }
                None
            })
            .collect()
    }

    fn restore_values(root: &Element, typed: &[(String, Typed)]) {
        for (k, f) in field_keys(root) {
            let Some((_, v)) = typed.iter().find(|(t, _)| *t == k) else {
                continue;
            };
            match v {
                Typed::Checked(c) => {
                    if let Some(i) = f.dyn_ref::<HtmlInputElement>() {
                        i.set_checked(*c);
                    }
                }
                Typed::Text(s) => {
                    if let Some(i) = f.dyn_ref::<HtmlInputElement>() {
                        i.set_value(s);
                    } else if let Some(t) = f.dyn_ref::<HtmlTextAreaElement>() {
                        t.set_value(s);
                    } else if let Some(sel) = f.dyn_ref::<HtmlSelectElement>() {
                        sel.set_value(s);
                    }
                }
            }
        }
    }

    /// Opens the page's event streams (`data-stream`) and its polling (`data-refresh-every`),
    /// and closes those the page no longer has.
    fn sync_live() {
        let doc = document();
        let Some(body) = doc.body() else { return };
        let mut urls: Vec<String> = Vec::new();
        let mut on_ready: Vec<String> = Vec::new();
        let mut every: Option<u32> = None;
        each(&body, "[data-stream]", |e| {
            if let Some(u) = e.get_attribute("data-stream")
                && u.starts_with("/api/")
                && !urls.contains(&u)
            {
                // A short-lived thing (a probe run) may have changed between the page's
                // rendering and the stream's start: re-render once the stream is open.
                if e.get_attribute("data-stream-ready").as_deref() == Some("refresh") {
                    on_ready.push(u.clone());
                }
                urls.push(u);
            }
        });
        each(&body, "[data-refresh-every]", |e| {
            if let Some(s) = e
                .get_attribute("data-refresh-every")
                .and_then(|v| v.parse::<u32>().ok())
            {
                let s = s.max(5);
                every = Some(every.map_or(s, |e| e.min(s)));
            }
        });
        STATE.with(|state| {
            let mut state = state.borrow_mut();
            state.streams.retain(|(u, es)| {
                let keep = urls.contains(u);
                if !keep {
                    es.close();
                }
                keep
            });
            for u in urls {
                if state.streams.iter().any(|(o, _)| *o == u) {
                    continue;
                }
                if let Ok(es) = EventSource::new(&u) {
                    let cb = Closure::<dyn FnMut(Event)>::new(|_| schedule_refresh(300));
                    let _ =
                        es.add_event_listener_with_callback("changed", cb.as_ref().unchecked_ref());
                    if on_ready.contains(&u) {
                        let _ = es
                            .add_event_listener_with_callback("ready", cb.as_ref().unchecked_ref());
                    }
                    cb.forget();
                    state.streams.push((u, es));
                }
            }
            if state.interval.map(|(s, _)| s) != every {
                if let Some((_, handle)) = state.interval.take() {
                    window().clear_interval_with_handle(handle);
                }
                if let Some(s) = every {
                    let cb = Closure::<dyn FnMut()>::new(|| schedule_refresh(0));
                    if let Ok(h) = window().set_interval_with_callback_and_timeout_and_arguments_0(
                        cb.as_ref().unchecked_ref(),
                        (s * 1000) as i32,
                    ) {
                        state.interval = Some((s, h));
                    }
                    cb.forget();
                }
            }
        });
    }

    // ---- small things -------------------------------------------------------------------

    /// Rewrites every `<time datetime>` in the viewer's zone ("2026-11-29 14:03:09
    /// (UTC+1)"); the UTC text stays in the title.
    fn localize_times(root: &Element) {
        each(root, "time[datetime]", |t| {
            let Some(iso) = t.get_attribute("datetime") else {
                return;
            };
            let d = js_sys::Date::new(&JsValue::from_str(&iso));
            let ms = d.get_time();
            if ms.is_nan() {
                return;
            }
            t.set_text_content(Some(&local_text(&d)));
        });
    }

    fn local_text(d: &js_sys::Date) -> String {
        // getTimezoneOffset() is minutes *behind* UTC.
        let offset = -(d.get_timezone_offset() as i32);
        let (h, m) = (offset / 60, (offset % 60).abs());
        let zone = if m == 0 {
            format!("UTC{h:+}")
        } else {
            format!("UTC{h:+}:{m:02}")
        };
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} ({zone})",
            d.get_full_year(),
            d.get_month() + 1,
            d.get_date(),
            d.get_hours(),
            d.get_minutes(),
            d.get_seconds()
        )
    }

    fn on_click(ev: Event) {
        let Some(el) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        if let Ok(Some(b)) = el.closest("table.sortable button.sort") {
            sort_table(&b);
        } else if let Ok(Some(b)) = el.closest("button.copy[data-copy]") {
            copy(b.get_attribute("data-copy").unwrap_or_default());
            b.set_text_content(Some("Copied"));
        } else if let Ok(Some(b)) = el.closest("#note-preview") {
            preview(b);
        } else if let Ok(Some(b)) = el.closest("#postmortem-copy") {
            let href = b.get_attribute("data-href").unwrap_or_default();
            leptos::task::spawn_local(async move {
                if let Ok((200, _, text)) = request(&href, "POST", None, "text/markdown").await {
                    copy(text);
                    b.set_text_content(Some("Postmortem copied"));
                }
            });
        }
    }

    fn copy(text: String) {
        let nav = window().navigator();
        if let Ok(clip) = js_sys::Reflect::get(&nav, &"clipboard".into())
            && let Ok(f) = js_sys::Reflect::get(&clip, &"writeText".into())
            && let Ok(f) = f.dyn_into::<js_sys::Function>()
        {
            let _ = f.call1(&clip, &text.into());
        }
    }

    /// "Preview" of a note: the server renders the markdown exactly as it will be saved.
    fn preview(button: Element) {
        let doc = document();
        let Some(area) = doc
            .get_element_by_id("note-body")
            .and_then(|e| e.dyn_into::<HtmlTextAreaElement>().ok())
        else {
            return;
        };
        let url = <crate::incident_fns::PreviewMarkdown as leptos::server_fn::ServerFn>::PATH;
        let Ok(params) = UrlSearchParams::new() else {
            return;
        };
        params.append("body", &area.value());
        let body = String::from(params.to_string());
        leptos::task::spawn_local(async move {
            let out = match doc.get_element_by_id("note-preview-html") {
                Some(e) => e,
                None => {
                    let Ok(div) = doc.create_element("div") else {
                        return;
                    };
                    div.set_id("note-preview-html");
                    let anchor = button
                        .closest(".composer-actions")
                        .ok()
                        .flatten()
                        .unwrap_or(button);
                    let _ = anchor.after_with_node_1(&div);
                    div
                }
            };
            match request(url, "POST", Some(&body), "application/json").await {
                Ok((200, _, text)) => {
                    // The server's own rendering of the markdown (sanitised there, as saved).
                    let html = js_sys::JSON::parse(&text)
                        .ok()
                        .and_then(|v| v.as_string())
                        .unwrap_or_default();
                    out.set_class_name("md preview");
                    out.set_inner_html(&html);
                }
                Ok((status, _, text)) => {
                    out.set_class_name("form-error");
                    out.set_text_content(Some(&error_message(status, &text)));
                }
                Err(()) => {
                    out.set_class_name("form-error");
                    out.set_text_content(Some("Could not reach the Lookout server."));
                }
            }
        });
    }

    fn on_change(ev: Event) {
        let Some(sel) = ev
            .target()
            .and_then(|t| t.dyn_into::<HtmlSelectElement>().ok())
        else {
            return;
        };
        if sel.id() != "run-choice" {
            return;
        }
        let probe = sel
            .selected_options()
            .item(0)
            .and_then(|o| o.get_attribute("data-probe"))
            .unwrap_or_default();
        if let Ok(Some(form)) = sel.closest("form") {
            each(&form, "details.params[data-probe]", |d| {
                let show = d.get_attribute("data-probe").as_deref() == Some(probe.as_str());
                let _ = d.class_list().toggle_with_force("hidden", !show);
            });
        }
    }

    /// Sorts a `table.sortable` by the clicked header (again to reverse). Numbers with units
    /// sort by value ([`sort_key`]).
    fn sort_table(button: &Element) {
        let (Ok(Some(th)), Ok(Some(table))) = (button.closest("th"), button.closest("table"))
        else {
            return;
        };
        let Some(col) = th
            .dyn_ref::<web_sys::HtmlTableCellElement>()
            .map(|c| c.cell_index())
        else {
            return;
        };
        let Ok(Some(tbody)) = table.query_selector("tbody") else {
            return;
        };
        let desc = table.get_attribute("data-sort") == Some(format!("{col}:asc"));
        let _ = table.set_attribute(
            "data-sort",
            &format!("{col}:{}", if desc { "desc" } else { "asc" }),
        );
        let mut rows: Vec<(Element, (u8, f64, String))> = Vec::new();
        each(&tbody, ":scope > tr", |tr| {
            let cell = tr
                .children()
                .item(col as u32)
                .and_then(|c| c.text_content())
                .unwrap_or_default();
            rows.push((tr, sort_key(&cell)));
        });
        rows.sort_by(|(_, a), (_, b)| {
            let o = a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2));
            if desc { o.reverse() } else { o }
        });
        for (tr, _) in &rows {
            let _ = tbody.append_child(tr);
        }
        each(&table, "thead th", |h| {
            let same = h.is_same_node(Some(&th));
            if let Ok(Some(mark)) = h.query_selector(".mark") {
                mark.set_text_content(Some(match (same, desc) {
                    (true, false) => " ▲",
                    (true, true) => " ▼",
                    _ => "",
                }));
            }
            let _ = if same {
                h.set_attribute("aria-sort", if desc { "descending" } else { "ascending" })
            } else {
                h.remove_attribute("aria-sort")
            };
        });
    }
}
