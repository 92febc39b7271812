//! Resolving a target for connecting: its row, its secret opened, the address with the
//! credentials put in (by its kind), once the reach limits allow it. Used by "test
//! connection", probe runs and the Kafka sampler alike; nothing here is stored or shown.

use crate::error::{DomainError, DomainResult};
use crate::kinds;
use crate::reach::Access;
use crate::secrets::SecretBox;
use crate::storage::targets as store;

pub(crate) fn no_key() -> DomainError {
    DomainError::conflict(
        "LOOKOUT_SECRET_KEY is not set on the server, so secrets cannot be stored or used",
    )
}

/// A target's row, or "no target N".
pub(crate) async fn row(pool: &sqlx::PgPool, id: i64) -> DomainResult<store::TargetRow> {
    store::by_id(pool, id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no target {id}")))
}

/// The target's secret in clear (for connecting only).
pub(crate) fn open_secret(
    key: Option<&SecretBox>,
    r: &store::TargetRow,
) -> DomainResult<Option<String>> {
    match &r.secret_ciphertext {
        Some(c) => Ok(Some(
            key.ok_or_else(no_key)?
                .open(c)
                .map_err(DomainError::Conflict)?,
        )),
        None => Ok(None),
    }
}

/// Where to connect to a target, credentials put in by its kind, once the reach limits
/// allow it (files inside the configured directory, hosts inside the allowed networks).
/// An unsupported kind is an error that names it.
pub(crate) async fn connect_address(
    access: &Access,
    r: &store::TargetRow,
    secret: Option<&str>,
) -> Result<String, String> {
    let kind = kinds::get(&r.kind).map_err(|e| e.to_string())?;
    access.reach.check_connect(kind, &r.connection).await?;
    kind.connect_address(&r.connection, &r.username, secret)
}

/// A driver's message with the secret taken out in every form a driver might echo it: as is,
/// percent-encoded (as it sits in a connection URL) and form-encoded.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    let Some(s) = secret.filter(|s| !s.is_empty()) else {
        return text.to_string();
    };
    let pct: String = url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
    let mut url_userinfo = url::Url::parse("x://h").ok();
    let userinfo = url_userinfo
        .as_mut()
        .and_then(|u| {
            u.set_password(Some(s))
                .ok()
                .map(|_| u.password().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    let mut out = text.to_string();
    // Longest first, so a form that contains another is replaced whole.
    let mut forms = [s.to_string(), pct, form, userinfo];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    for f in forms.iter().filter(|f| !f.is_empty()) {
        out = out.replace(f.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scrub;
    use crate::kinds::url::with_credentials;

    #[test]
    fn the_secret_is_scrubbed_in_every_encoding() {
        let secret = "p@ss w/rd:%&é";
        let in_url = with_credentials("postgres://db:5432/app", "app", Some(secret)).unwrap();
        let cases = [
            format!("auth failed for {secret}"),
            format!("cannot connect to {in_url}"),
            format!(
                "bad query password={}",
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
            ),
        ];
        for text in cases {
            let out = scrub(&text, Some(secret));
            assert!(out.contains("***"), "{out}");
            assert!(
                !out.contains("p@ss") && !out.contains("p%40ss") && !out.contains("w%2Frd"),
                "{text} -> {out}"
            );
        }
        assert_eq!(scrub("nothing here", Some("")), "nothing here");
        assert_eq!(scrub("nothing here", None), "nothing here");
    }
}
