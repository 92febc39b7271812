#![recursion_limit = "512"]
//! The wasm entry point. It hydrates the server-rendered `App`, then sets
//! `window.__lookoutHydrated` so end-to-end tests can wait for interactivity. A panic (a
//! hydration mismatch, say) is logged to the console and kept in `window.__lookoutPanic`,
//! so a test that waits in vain can say why.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let _ = js_sys::Reflect::set(
            &js_sys::global(),
            &wasm_bindgen::JsValue::from_str("__lookoutPanic"),
            &wasm_bindgen::JsValue::from_str(&info.to_string()),
        );
    }));
    leptos::mount::hydrate_body(app::App);
    let _ = js_sys::Reflect::set(
        &js_sys::global(),
        &wasm_bindgen::JsValue::from_str("__lookoutHydrated"),
        &wasm_bindgen::JsValue::TRUE,
    );
}
