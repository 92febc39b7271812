#![recursion_limit = "512"]
//! The wasm entry point. It hydrates the server-rendered `App`, then sets
//! `window.__lookoutHydrated` so end-to-end tests can wait for interactivity.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    let _ = js_sys::Reflect::set(
        &js_sys::global(),
        &wasm_bindgen::JsValue::from_str("__lookoutHydrated"),
        &wasm_bindgen::JsValue::TRUE,
    );
}
