//! Live incident pages: PostgreSQL NOTIFY (sent by a trigger on every new timeline event)
//! fans out to the browsers watching that incident through server-sent events. LISTEN runs
//! on every replica, so a note written through one replica reaches pages served by another.
//! The streams browsers subscribe to are in `api/streams.rs`.

use std::time::Duration;
use tokio::sync::broadcast;

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
