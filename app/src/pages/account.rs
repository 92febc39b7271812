//! A signed-in user's own account: who they are, and changing their password.

use crate::account_fns::{ChangePassword, whoami};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AccountPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    let change = ServerAction::<ChangePassword>::new();
    view! {
        <Title text="Your account"/>
        <h1>"Your account"</h1>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                me.await.ok().map(|p| view! {
                    <p>"Signed in as " <strong>{p.name.clone()}</strong> " with the "
                       <strong>{p.role.to_string()}</strong> " role."</p>
                })
            })}
        </Suspense>
        <section class="panel">
            <h2>"Change your password"</h2>
            <ActionForm action=change attr:class="stack" attr:data-done="Your password was changed.">
                <label>"Current password"
                    <input type="password" name="current" autocomplete="current-password" required/>
                </label>
                <label>"New password (at least 12 characters)"
                    <input type="password" name="new_password" autocomplete="new-password" minlength="12" required/>
                </label>
                <label>"New password again"
                    <input type="password" name="confirm" autocomplete="new-password" minlength="12" required/>
                </label>
                <button type="submit" class="primary">"Change password"</button>
            </ActionForm>
        </section>
    }
}
