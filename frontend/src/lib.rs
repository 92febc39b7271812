//! The wasm entry point. Lookout runs in Leptos islands mode: the server renders every page,
//! and the only hydrated part is the `Enhance` island (`app::components::enhance`), which
//! sets `window.__lookoutHydrated` once it is in place so end-to-end tests can wait for it.
//! A panic is logged to the console and kept in `window.__lookoutPanic`, so a test that
//! waits in vain can say why.
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
    // Leptos's island script then calls each island's exported function; calling into
    // `app` here is also what links those exports into this wasm.
    app::hydrate_islands();
}
