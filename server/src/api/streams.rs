//! `/api/v1/.../stream`: server-sent events for the pages that follow an incident or a probe
//! run live, fed by `crate::live` (PostgreSQL NOTIFY, on every replica).

use super::ApiPath;
use crate::error::ApiError;
use crate::live::Change;
use crate::route;
use crate::routes::Routes;
use crate::state::Shared;
use axum::Extension;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::Principal;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(r, "/api/v1/incidents/{key}/stream", get(stream));
    route!(r, "/api/v1/probe-runs/{id}/stream", get(run_stream))
}

/// `GET /api/v1/incidents/{key}/stream`: an SSE stream with a `changed` event whenever the
/// incident's timeline changes. Any signed-in role.
pub async fn stream(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiPath(key): ApiPath<String>,
) -> Result<Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let incident = domain::services::incidents::get(&shared.pool, &who, &key).await?;
    Ok(changes(&shared, Change::Incident(incident.incident.id)))
}

/// `GET /api/v1/probe-runs/{id}/stream`: an SSE stream with a `changed` event whenever the
/// run's progress or status changes. Any signed-in role.
pub async fn run_stream(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    domain::services::probe_runs::get_run(&shared.pool, &who, id).await?;
    Ok(changes(&shared, Change::ProbeRun(id)))
}

fn changes(
    shared: &Shared,
    watched: Change,
) -> Sse<impl futures_core::Stream<Item = Result<Event, Infallible>> + use<>> {
    let id = match watched {
        Change::Incident(i) | Change::ProbeRun(i) => i,
    };
    let mut rx = shared.live.subscribe();
    let stream = async_stream::stream! {
        yield Ok(Event::default().event("ready").data(id.to_string()));
        loop {
            match rx.recv().await {
                Ok(changed) if changed == watched => {
                    yield Ok(Event::default().event("changed").data(id.to_string()));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    yield Ok(Event::default().event("changed").data(id.to_string()));
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
