//! Live incident pages: PostgreSQL NOTIFY (sent by a trigger on every new timeline event)
//! fans out to the browsers watching that incident through server-sent events. LISTEN runs
//! on every replica, so a note written through one replica reaches pages served by another.

use crate::state::Shared;
use axum::Extension;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::Principal;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

use crate::route;
use crate::routes::Routes;

/// The server-sent event streams (incident timelines, probe runs).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(r, "/api/v1/incidents/{key}/stream", get(stream));
    route!(r, "/api/v1/probe-runs/{id}/stream", get(run_stream))
}

pub const CHANNEL: &str = "lookout_incident";
/// Sent by a trigger on every change of a probe run (progress, end).
pub const RUN_CHANNEL: &str = "lookout_probe_run";

/// Something changed: an incident's timeline, or a probe run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Incident(i64),
    ProbeRun(i64),
}

#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<Change>,
}

impl Live {
    /// Starts the LISTEN loop (reconnecting with a pause after errors).
    pub fn start(pool: sqlx::PgPool) -> Self {
        let (tx, _) = broadcast::channel(1024);
        let sender = tx.clone();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut l) => {
                        if let Err(e) = l.listen_all([CHANNEL, RUN_CHANNEL]).await {
                            tracing::warn!(error = %e, "LISTEN failed; retrying");
                        } else {
                            loop {
                                match l.recv().await {
                                    Ok(n) => {
                                        if let Ok(id) = n.payload().parse::<i64>() {
                                            let change = if n.channel() == RUN_CHANNEL {
                                                Change::ProbeRun(id)
                                            } else {
                                                Change::Incident(id)
                                            };
                                            let _ = sender.send(change);
                                        }
                                    }
                                    Err(_) if pool.is_closed() => return,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "live updates interrupted; reconnecting");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for live updates; retrying")
                    }
                }
                if pool.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        Live { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

/// `GET /api/v1/incidents/{key}/stream`: an SSE stream with a `changed` event whenever the
/// incident's timeline changes. Any signed-in role.
pub async fn stream(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    crate::api::ApiPath(key): crate::api::ApiPath<String>,
) -> Result<Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>>, crate::error::ApiError>
{
    let incident = domain::services::incidents::get(&shared.pool, &who, &key).await?;
    Ok(changes(&shared, Change::Incident(incident.incident.id)))
}

/// `GET /api/v1/probe-runs/{id}/stream`: an SSE stream with a `changed` event whenever the
/// run's progress or status changes. Any signed-in role.
pub async fn run_stream(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    crate::api::ApiPath(id): crate::api::ApiPath<i64>,
) -> Result<Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>>, crate::error::ApiError>
{
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
