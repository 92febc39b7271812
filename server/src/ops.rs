//! Operations endpoints: liveness, readiness, Prometheus metrics.

use crate::error::json_error;
use crate::state::Shared;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{Principal, Role};
use std::sync::Arc;

/// `GET /healthz`: the process is up and serving. Never touches the database.
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Why Lookout is not ready: a fixed sentence anyone may see, and the detail (driver errors
/// can name hosts, users and databases) for the log and for signed-in callers only.
#[derive(Debug)]
pub struct NotReady {
    pub reason: &'static str,
    pub detail: String,
}

/// Whether the database answers and every embedded migration is applied successfully.
pub async fn readiness(pool: &sqlx::PgPool) -> Result<(), NotReady> {
    let applied: Vec<(i64, bool)> = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations").fetch_all(pool),
    )
    .await
    .map_err(|_| NotReady {
        reason: "the database did not answer within 3 s",
        detail: String::new(),
    })?
    .map_err(|e| NotReady {
        reason: "the database cannot be reached",
        detail: e.to_string(),
    })?;
    for m in domain::storage::MIGRATOR.iter() {
        if !applied.iter().any(|(v, ok)| *v == m.version && *ok) {
            return Err(NotReady {
                reason: "a database migration is not applied",
                detail: format!("migration {} ({}) is not applied", m.version, m.description),
            });
        }
    }
    Ok(())
}

/// `GET /readyz`: 200 when the database is reachable and migrations are applied, else 503
/// with a fixed reason; the detail only for signed-in callers.
pub async fn readyz(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    who: Option<axum::Extension<Principal>>,
) -> Response {
    match readiness(&shared.pool).await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(reason = e.reason, detail = %e.detail, "not ready");
            let mut body = serde_json::json!({ "status": "not ready", "reason": e.reason });
            if who.is_some_and(|w| w.require(Role::Viewer).is_ok()) && !e.detail.is_empty() {
                body["detail"] = serde_json::Value::String(e.detail);
            }
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format. Needs a session or token (any role).
pub async fn metrics(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    axum::Extension(who): axum::Extension<Principal>,
) -> Response {
    if let Err(e) = who.require(Role::Viewer) {
        return json_error(StatusCode::FORBIDDEN, "forbidden", &e.to_string());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(&shared.pool),
    )
        .into_response()
}
