//! Live updates: server-sent events from `/api/v1/…/stream` bump a signal that resources
//! depend on, so the page refetches what changed.

use leptos::prelude::*;

/// Subscribes to a server-sent-events stream (hydrated only) and bumps `tick` on every
/// `changed` event. `None` closes the stream (e.g. once a probe run has ended).
pub fn follow_stream(url: Signal<Option<String>>, tick: RwSignal<u64>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;
        let current: StoredValue<Option<web_sys::EventSource>, LocalStorage> =
            StoredValue::new_local(None);
        Effect::new(move |_| {
            let u = url.get();
            if let Some(old) = current.get_value() {
                old.close();
                current.set_value(None);
            }
            let Some(u) = u else { return };
            let Ok(es) = web_sys::EventSource::new(&u) else {
                return;
            };
            let on_change = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
                move |_e: web_sys::MessageEvent| {
                    tick.update(|t| *t += 1);
                },
            );
            let _ =
                es.add_event_listener_with_callback("changed", on_change.as_ref().unchecked_ref());
            on_change.forget();
            current.set_value(Some(es));
        });
        on_cleanup(move || {
            if let Some(es) = current.get_value() {
                es.close();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (url, tick);
    }
}
