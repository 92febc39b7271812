//! Server functions for the Targets page (adapters over `domain::services::targets`).
// A form's fields are its server function's arguments.
#![allow(clippy::too_many_arguments)]

use crate::error::AppError;
use domain::targets::{ConnectionTest, KindInfo, Target, TargetKind};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::state::call;
#[cfg(feature = "ssr")]
use domain::services::targets as svc;

#[server(prefix = "/api/fn", endpoint = "targets/list")]
pub async fn list_targets() -> Result<Vec<Target>, AppError> {
    let c = call()?;
    Ok(svc::list(&c.pool, &c.who).await?)
}

/// The kinds the server supports, for the form's choice.
#[server(prefix = "/api/fn", endpoint = "targets/kinds")]
pub async fn target_kinds() -> Result<Vec<KindInfo>, AppError> {
    let c = call()?;
    Ok(svc::kinds(&c.who)?)
}

#[server(prefix = "/api/fn", endpoint = "targets/create")]
pub async fn create_target(
    name: String,
    kind: TargetKind,
    connection: String,
    username: String,
    #[server(default)] secret: String,
    #[server(default)] kubeconfig: String,
    environment: String,
) -> Result<Target, AppError> {
    let c = call()?;
    let secret = one_secret(secret, kubeconfig)?;
    Ok(svc::create(
        &c.pool,
        &c.who,
        &c.meta,
        &c.access,
        svc::NewTarget {
            name,
            kind,
            connection,
            username,
            secret,
            environment,
            labels: Default::default(),
        },
    )
    .await?)
}

/// The form has a password field and, for Kubernetes, a kubeconfig text area (a password
/// field would drop its line breaks): whichever is filled is the secret.
#[cfg(feature = "ssr")]
fn one_secret(secret: String, kubeconfig: String) -> Result<Option<String>, AppError> {
    match (secret.is_empty(), kubeconfig.trim().is_empty()) {
        (_, true) => Ok(Some(secret).filter(|s| !s.is_empty())),
        (true, false) => Ok(Some(kubeconfig)),
        (false, false) => Err(AppError::from(domain::DomainError::Invalid(
            "give either a password/token or a kubeconfig, not both".into(),
        ))),
    }
}

#[server(prefix = "/api/fn", endpoint = "targets/delete")]
pub async fn delete_target(target_id: i64) -> Result<(), AppError> {
    let c = call()?;
    Ok(svc::delete(&c.pool, &c.who, &c.meta, target_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "targets/test")]
pub async fn test_target(target_id: i64) -> Result<(i64, ConnectionTest), AppError> {
    let c = call()?;
    let r = svc::test_connection(
        &c.pool,
        &c.who,
        &c.access,
        target_id,
        std::time::Duration::from_secs(10),
    )
    .await?;
    Ok((target_id, r))
}

#[server(prefix = "/api/fn", endpoint = "targets/get")]
pub async fn get_target(target_id: i64) -> Result<Target, AppError> {
    let c = call()?;
    Ok(svc::get(&c.pool, &c.who, target_id).await?)
}

/// Edits a target (admins). An empty secret keeps the stored one; `clear_secret` removes it.
#[server(prefix = "/api/fn", endpoint = "targets/update")]
pub async fn update_target(
    target_id: i64,
    name: String,
    connection: String,
    username: String,
    #[server(default)] secret: String,
    #[server(default)] kubeconfig: String,
    #[server(default)] clear_secret: Option<String>,
    environment: String,
) -> Result<Target, AppError> {
    let c = call()?;
    let secret = one_secret(secret, kubeconfig)?;
    Ok(svc::update(
        &c.pool,
        &c.who,
        &c.meta,
        &c.access,
        target_id,
        svc::TargetPatch {
            name: Some(name),
            connection: Some(connection),
            username: Some(username),
            secret,
            clear_secret: clear_secret.is_some_and(|v| v == "on" || v == "true"),
            environment: Some(environment),
            labels: None,
        },
    )
    .await?)
}
