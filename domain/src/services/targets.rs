//! Targets: admins create, edit and delete them; responders test connections. Secrets are
//! sealed before storage and opened only to connect; they never appear in a result.

use crate::accounts::{Principal, RequestMeta, Role};
use crate::error::{DomainError, DomainResult};
use crate::reach::Access;
use crate::secrets::SecretBox;
use crate::storage::{audit, is_unique_violation, targets as store};
use crate::targets::*;
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;

fn invalid(m: impl Into<String>) -> DomainError {
    DomainError::Invalid(m.into())
}

fn no_key() -> DomainError {
    DomainError::conflict(
        "LOOKOUT_SECRET_KEY is not set on the server, so secrets cannot be stored or used",
    )
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    pub name: String,
    pub kind: TargetKind,
    pub connection: String,
    #[serde(default)]
    pub username: String,
    /// A password or token; sealed before it is stored.
    #[serde(default)]
    pub secret: Option<String>,
    pub environment: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A change; `secret: Some("")` leaves it, `clear_secret` removes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPatch {
    pub name: Option<String>,
    pub connection: Option<String>,
    pub username: Option<String>,
    pub secret: Option<String>,
    #[serde(default)]
    pub clear_secret: bool,
    pub environment: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

fn seal(key: Option<&SecretBox>, secret: &str) -> DomainResult<Vec<u8>> {
    if secret.len() > 4096 {
        return Err(invalid("a secret is at most 4096 bytes"));
    }
    key.ok_or_else(no_key)?
        .seal(secret)
        .map_err(DomainError::internal)
}

pub async fn list(pool: &PgPool, who: &Principal) -> DomainResult<Vec<Target>> {
    who.require(Role::Viewer)?;
    let mut last = crate::services::probe_runs::latest_runs(pool, who).await?;
    Ok(store::list(pool)
        .await?
        .iter()
        .map(|t| {
            let mut v = t.view();
            v.last_run = last.remove(&t.id);
            v
        })
        .collect())
}

pub(crate) async fn row(pool: &PgPool, id: i64) -> DomainResult<store::TargetRow> {
    store::by_id(pool, id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no target {id}")))
}

pub async fn get(pool: &PgPool, who: &Principal, id: i64) -> DomainResult<Target> {
    who.require(Role::Viewer)?;
    Ok(row(pool, id).await?.view())
}

pub async fn create(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    access: &Access,
    n: NewTarget,
) -> DomainResult<Target> {
    who.require(Role::Admin)?;
    let key = access.key.as_ref();
    let name = n.name.trim().to_string();
    check_target_name(&name).map_err(invalid)?;
    check_connection(n.kind, &n.connection).map_err(invalid)?;
    access
        .reach
        .check_files(n.kind, &n.connection)
        .map_err(invalid)?;
    crate::incidents::check_name("environment", n.environment.trim()).map_err(invalid)?;
    if n.username.chars().count() > 200 {
        return Err(invalid("a username is at most 200 characters"));
    }
    let secret = match n.secret.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(seal(key, s)?),
        None => None,
    };
    let r = store::TargetRow {
        id: 0,
        name: name.clone(),
        kind: n.kind,
        connection: n.connection.trim().to_string(),
        username: n.username.trim().to_string(),
        secret_ciphertext: secret,
        environment: n.environment.trim().to_string(),
        labels: super::labels_json(&n.labels)?,
        created_by: who.name.clone(),
        created_at: time::OffsetDateTime::now_utc(),
        updated_at: time::OffsetDateTime::now_utc(),
    };
    if r.kind == TargetKind::Kafka {
        kafka_credentials(&r).map_err(invalid)?;
    }
    let mut tx = pool.begin().await?;
    let id = match store::insert(&mut *tx, &r).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            return Err(DomainError::conflict(format!(
                "a target named {name:?} already exists"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    audit::append(
        &mut *tx,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "target.create",
            target: &name,
            details: serde_json::json!({ "kind": n.kind, "secret_set": r.secret_ciphertext.is_some() }),
            meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(row(pool, id).await?.view())
}

pub async fn update(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    access: &Access,
    id: i64,
    p: TargetPatch,
) -> DomainResult<Target> {
    who.require(Role::Admin)?;
    let key = access.key.as_ref();
    let mut r = row(pool, id).await?;
    if let Some(name) = &p.name {
        check_target_name(name.trim()).map_err(invalid)?;
        r.name = name.trim().to_string();
    }
    let before = destination(r.kind, &r.connection);
    if let Some(c) = &p.connection {
        check_connection(r.kind, c).map_err(invalid)?;
        access.reach.check_files(r.kind, c).map_err(invalid)?;
        r.connection = c.trim().to_string();
    }
    if let Some(u) = &p.username {
        if u.chars().count() > 200 {
            return Err(invalid("a username is at most 200 characters"));
        }
        r.username = u.trim().to_string();
    }
    if let Some(e) = &p.environment {
        crate::incidents::check_name("environment", e.trim()).map_err(invalid)?;
        r.environment = e.trim().to_string();
    }
    if let Some(l) = &p.labels {
        r.labels = super::labels_json(l)?;
    }
    let mut secret_change = "kept";
    // The stored secret must not follow the target to another host (an admin could point a
    // target at a server they control and collect it): a new destination needs the secret
    // again, or clearing it.
    let new_secret = p.secret.as_deref().is_some_and(|s| !s.is_empty());
    if r.secret_ciphertext.is_some()
        && !p.clear_secret
        && !new_secret
        && destination(r.kind, &r.connection) != before
    {
        return Err(invalid(
            "the connection now leads to another host or port: enter the secret again (or clear it) to save",
        ));
    }
    if p.clear_secret {
        r.secret_ciphertext = None;
        secret_change = "cleared";
    } else if let Some(s) = p.secret.as_deref().filter(|s| !s.is_empty()) {
        r.secret_ciphertext = Some(seal(key, s)?);
        secret_change = "replaced";
    }
    if r.kind == TargetKind::Kafka {
        kafka_credentials(&r).map_err(invalid)?;
    }
    let mut tx = pool.begin().await?;
    if let Err(e) = store::save(&mut *tx, &r).await {
        return Err(if is_unique_violation(&e) {
            DomainError::conflict(format!("a target named {:?} already exists", r.name))
        } else {
            e.into()
        });
    }
    audit::append(
        &mut *tx,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "target.update",
            target: &r.name,
            details: serde_json::json!({ "secret": secret_change }),
            meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(row(pool, id).await?.view())
}

pub async fn delete(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    id: i64,
) -> DomainResult<()> {
    who.require(Role::Admin)?;
    let r = row(pool, id).await?;
    let mut tx = pool.begin().await?;
    store::delete(&mut *tx, id).await?;
    audit::append(
        &mut *tx,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "target.delete",
            target: &r.name,
            details: serde_json::json!({ "kind": r.kind }),
            meta,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
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

/// Where to connect to a target: its URL with the credentials put in (Redis, PostgreSQL) or
/// its bootstrap servers (Kafka), once the reach limits allow it (files inside the
/// configured directory, hosts inside the allowed networks). Used by "test connection",
/// probe runs and the Kafka sampler alike.
pub(crate) async fn connect_address(
    access: &Access,
    r: &store::TargetRow,
    secret: Option<&str>,
) -> Result<String, String> {
    access.reach.check_connect(r.kind, &r.connection).await?;
    match r.kind {
        TargetKind::Redis | TargetKind::Postgres => {
            with_credentials(&r.connection, &r.username, secret)
        }
        TargetKind::Kafka => {
            kafka_credentials(r)?;
            match secret {
                Some(pw) => Ok(probes::kafka::config::KafkaConfig::with_credentials(
                    &r.connection,
                    &r.username,
                    pw,
                )),
                None => Ok(r.connection.clone()),
            }
        }
        TargetKind::Kubernetes | TargetKind::Prometheus => Err(format!(
            "no connection check for {} targets yet: it arrives with their probes",
            r.kind
        )),
    }
}

/// A Kafka target's credentials match its security protocol: SASL needs a username and a
/// secret (the password); without SASL there is nothing to send them with.
fn kafka_credentials(r: &store::TargetRow) -> Result<(), String> {
    let cfg = probes::kafka::config::KafkaConfig::parse(&r.connection, false)?;
    let has = (!r.username.is_empty(), r.secret_ciphertext.is_some());
    match (cfg.protocol.sasl(), has) {
        (true, (true, true)) | (false, (false, false)) => Ok(()),
        (true, _) => Err(format!(
            "security.protocol={} needs the SASL username and its password in the secret",
            cfg.protocol.as_str()
        )),
        (false, _) => Err(
            "a username or secret on a Kafka target needs security.protocol=SASL_PLAINTEXT or SASL_SSL in the connection (e.g. host:9093?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512)"
                .into(),
        ),
    }
}

/// Puts credentials into a URL for connecting (never stored or shown).
pub(crate) fn with_credentials(
    url: &str,
    username: &str,
    secret: Option<&str>,
) -> Result<String, String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if !username.is_empty() {
        u.set_username(username)
            .map_err(|_| "this URL cannot carry a username".to_string())?;
    }
    if let Some(s) = secret {
        u.set_password(Some(s))
            .map_err(|_| "this URL cannot carry a password".to_string())?;
    }
    Ok(u.to_string())
}

/// "Test connection": connects with the stored credentials within `limit` and reports the
/// server's answer or the exact failure. Read-only on the target.
pub async fn test_connection(
    pool: &PgPool,
    who: &Principal,
    access: &Access,
    id: i64,
    limit: Duration,
) -> DomainResult<ConnectionTest> {
    who.require(Role::Responder)?;
    let r = row(pool, id).await?;
    let secret = open_secret(access.key.as_ref(), &r)?;
    let failed = |summary: String| ConnectionTest {
        ok: false,
        summary,
        latency_ms: None,
        facts: vec![],
    };
    let address = match connect_address(access, &r, secret.as_deref()).await {
        Ok(a) => a,
        Err(e) => return Ok(failed(e)),
    };
    let result = match r.kind {
        TargetKind::Redis => probes::redis::check(&address, limit).await,
        TargetKind::Postgres => probes::postgres::check(&address, limit).await,
        _ => probes::kafka::check(&address, limit).await,
    };
    Ok(match result {
        Ok(rep) => ConnectionTest {
            ok: true,
            summary: format!(
                "{} {} answered in {:.1} ms",
                rep.kind, rep.server_version, rep.latency_ms
            ),
            latency_ms: Some(rep.latency_ms),
            facts: rep.facts,
        },
        Err(e) => failed(scrub(&e.to_string(), secret.as_deref())),
    })
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

/// Refuses to run without a key once any target holds a secret.
pub async fn check_key_present(pool: &PgPool, key: Option<&SecretBox>) -> Result<(), String> {
    if key.is_some() {
        return Ok(());
    }
    let n = store::count_with_secret(pool)
        .await
        .map_err(|e| format!("database: {e}"))?;
    if n > 0 {
        return Err(format!(
            "LOOKOUT_SECRET_KEY is not set, but {n} target(s) hold encrypted credentials; \
             start Lookout with the key they were sealed with"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{scrub, with_credentials};

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

    #[test]
    fn credentials_go_into_the_url_for_connecting_only() {
        assert_eq!(
            with_credentials("redis://cache:6379/0", "", Some("p@ss")).unwrap(),
            "redis://:p%40ss@cache:6379/0"
        );
        assert_eq!(
            with_credentials("postgres://db:5432/app", "app", Some("pw")).unwrap(),
            "postgres://app:pw@db:5432/app"
        );
    }
}
