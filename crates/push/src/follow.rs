//! The hub's reader of the event log: each host reads every new event once, wherever
//! it was appended (this host, another host on the same Redis), and hands it to its
//! hub, which fans it out to this host's connections. It wakes on the log's head
//! watch, never on a timer.

use std::sync::Arc;
use std::time::Duration;

use vigil_log::EventLog;

use crate::hub::{Hub, Published};

/// Wait before retrying a read that failed (the store away): the hub catches up within
/// this once the store is back.
const RETRY: Duration = Duration::from_millis(500);
/// Events handed to the hub at once: bounds one dispatch call during a catch-up.
const CHUNK: u64 = 256;

/// Follows `log` from its current head, publishing every later event to `hub` in
/// sequence order (and showing it to `observe` first, e.g. for metrics), until the hub
/// stops.
pub async fn follow(
    log: Arc<dyn EventLog>,
    hub: Hub,
    mut observe: impl FnMut(&[Arc<Published>]) + Send + 'static,
) {
    let mut heads = log.heads();
    let mut delivered = *heads.borrow_and_update();
    loop {
        let head = *heads.borrow_and_update();
        if head < delivered {
            // The log lost events (see `vigil_log::redis`): numbers restart below us.
            delivered = head;
        }
        while delivered < head {
            let to = head.min(delivered + CHUNK);
            match log.read(delivered + 1, to).await {
                Ok(events) => {
                    let present: Vec<_> = events.into_iter().flatten().collect();
                    if present.len() as u64 != to - delivered {
                        tracing::warn!(from = delivered + 1, to, "events left the log's history before this host read them; their subscribers resume with a reset");
                    }
                    if !present.is_empty() {
                        let present = vigil_log::with_derived(present);
                        observe(&present);
                        hub.publish(present).await;
                    }
                    delivered = to;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reading the event log failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = hub.closed() => return,
                    }
                }
            }
        }
        tokio::select! {
            changed = heads.changed() => if changed.is_err() { return },
            _ = hub.closed() => return,
        }
    }
}
