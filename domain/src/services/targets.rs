//! Targets: admins create, edit and delete them; responders test connections. Secrets are
//! sealed before storage and opened only to connect; they never appear in a result.

use super::resolve::{connect_address, no_key, open_secret, row, scrub};
use crate::accounts::{Principal, RequestMeta, Role};
use crate::error::{DomainError, DomainResult};
use crate::kinds::{self, Kind};
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

/// Checks a new secret for its kind (size, then the kind's own rules), then seals it.
fn seal(
    key: Option<&SecretBox>,
    kind: &dyn Kind,
    conn: &str,
    secret: &str,
) -> DomainResult<Vec<u8>> {
    let max = kind.max_secret_bytes();
    if secret.len() > max {
        return Err(invalid(format!(
            "a {} secret is at most {} bytes",
            kind.name(),
            max
        )));
    }
    kind.check_secret(conn, secret).map_err(invalid)?;
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

/// The username and secret fit the connection (by its kind).
fn check_credentials(kind: &dyn Kind, r: &store::TargetRow) -> DomainResult<()> {
    kind.check_credentials(&r.connection, &r.username, r.secret_ciphertext.is_some())
        .map_err(invalid)
}

/// The kinds this server supports: name and what the connection field holds.
pub fn kinds(who: &Principal) -> DomainResult<Vec<KindInfo>> {
    who.require(Role::Viewer)?;
    Ok(kinds::all()
        .into_iter()
        .map(|k| KindInfo {
            kind: TargetKind::from_static(k.name()),
            connection_help: k.connection_help().to_string(),
        })
        .collect())
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
    let kind = kinds::get(&n.kind)?;
    kinds::check_connection(kind, &n.connection).map_err(invalid)?;
    access
        .reach
        .check_files(kind, &n.connection)
        .map_err(invalid)?;
    crate::incidents::check_name("environment", n.environment.trim()).map_err(invalid)?;
    if n.username.chars().count() > 200 {
        return Err(invalid("a username is at most 200 characters"));
    }
    let secret = match n.secret.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(seal(key, kind, n.connection.trim(), s)?),
        None => None,
    };
    let r = store::TargetRow {
        id: 0,
        name: name.clone(),
        kind: n.kind.clone(),
        connection: n.connection.trim().to_string(),
        username: n.username.trim().to_string(),
        secret_ciphertext: secret,
        environment: n.environment.trim().to_string(),
        labels: super::labels_json(&n.labels)?,
        created_by: who.name.clone(),
        created_at: time::OffsetDateTime::now_utc(),
        updated_at: time::OffsetDateTime::now_utc(),
    };
    check_credentials(kind, &r)?;
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
    let kind = kinds::get(&r.kind)?;
    let before = kind.destination(&r.connection);
    if let Some(c) = &p.connection {
        kinds::check_connection(kind, c).map_err(invalid)?;
        access.reach.check_files(kind, c).map_err(invalid)?;
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
        && kind.destination(&r.connection) != before
    {
        return Err(invalid(
            "the connection now leads to another host or port: enter the secret again (or clear it) to save",
        ));
    }
    // A kept secret must still fit a changed connection (a kubeconfig names the context).
    if !p.clear_secret
        && !new_secret
        && p.connection.is_some()
        && let Some(kept) = open_secret(key, &r)?
    {
        kind.check_secret(&r.connection, &kept).map_err(invalid)?;
    }
    if p.clear_secret {
        r.secret_ciphertext = None;
        secret_change = "cleared";
    } else if let Some(s) = p.secret.as_deref().filter(|s| !s.is_empty()) {
        r.secret_ciphertext = Some(seal(key, kind, &r.connection, s)?);
        secret_change = "replaced";
    }
    check_credentials(kind, &r)?;
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
    // `connect_address` succeeded, so the kind is supported.
    let result = match kinds::get(&r.kind) {
        Ok(kind) => kind.check(&address, limit).await,
        Err(e) => return Ok(failed(e.to_string())),
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
