//! From the components' outbox to the event log (`vigil-log`).
//!
//! Components publish by writing an outbox entry (`outbox/<time>-<nonce>`, a JSON
//! array of events). Two paths lead from there into the log:
//!
//! - **Components this host runs**: the host takes their outbox writes over
//!   ([`OutboxTakeOver`]): the events are appended to the log before the component's
//!   `set` returns, so they are durable when the producer gets its 202. One atomic write
//!   instead of three (entry, log, delete), and nothing to scan.
//! - **Components run elsewhere** (`spin up`, SpinKube) on the same store leave outbox
//!   keys. The [`Relay`] finds them: on Redis from keyspace notifications
//!   ([`vigil_kv::KvBackend::watch_prefix`]), with a sweep when the watch starts or
//!   re-subscribes and a slow sweep every `outbox_sweep` for anything missed; on SQLite by
//!   looking every `outbox_poll` (a range read of an index, not a scan). Each entry is
//!   appended with itself as the consumed key, so it is deleted in the same atomic
//!   step, and an entry another host already moved is skipped: a number is assigned once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use vigil_core::event::Event;
use vigil_core::keys;
use vigil_kv::{KvBackend, Watched};
use vigil_log::EventLog;
use vigil_runtime::key_value::TakeOver;

/// Outbox entries read per sweep step.
const STEP: usize = 256;

/// Appends what a hosted component publishes straight to the log.
pub struct OutboxTakeOver(pub Arc<dyn EventLog>);

#[async_trait]
impl TakeOver for OutboxTakeOver {
    async fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        let events: Vec<Event> = serde_json::from_slice(value).map_err(|e| {
            anyhow::anyhow!("outbox entry {key} is not a JSON array of events: {e}")
        })?;
        self.0.append(events, None).await?;
        Ok(())
    }
}

/// Moves outbox entries left by components running elsewhere into the log.
pub struct Relay {
    kv: Arc<dyn KvBackend>,
    log: Arc<dyn EventLog>,
}

impl Relay {
    /// A relay from the outbox in `kv` to `log`.
    pub fn new(kv: Arc<dyn KvBackend>, log: Arc<dyn EventLog>) -> Self {
        Self { kv, log }
    }

    /// Runs until `stop` completes: on notifications where the store gives them
    /// (sweeping every `sweep`), else sweeping every `poll`.
    pub async fn run(
        self,
        poll: Duration,
        sweep: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let Some(mut watched) = self.kv.watch_prefix(keys::OUTBOX_PREFIX) else {
            let mut tick = tokio::time::interval(poll);
            loop {
                tokio::select! {
                    _ = tick.tick() => self.sweep().await,
                    _ = &mut stop => return,
                }
            }
        };
        let mut tick = tokio::time::interval(sweep);
        tick.tick().await; // the watch starts with `Missed`: no sweep now as well
        loop {
            tokio::select! {
                w = watched.recv() => match w {
                    Some(Watched::Key(key)) => self.relay_key(&key).await,
                    Some(Watched::Missed) => self.sweep().await,
                    None => return,
                },
                _ = tick.tick() => self.sweep().await,
                _ = &mut stop => return,
            }
        }
    }

    /// Moves every entry in the outbox.
    pub async fn sweep(&self) {
        loop {
            let entries = match self.kv.scan_prefix(keys::OUTBOX_PREFIX, STEP).await {
                Ok(entries) => entries,
                Err(e) => {
                    return tracing::error!(error = %format!("{e:#}"), "outbox sweep failed; retrying later")
                }
            };
            if entries.is_empty() {
                return;
            }
            for (key, value) in entries {
                if let Err(e) = self.relay(&key, &value).await {
                    return tracing::error!(error = %format!("{e:#}"), %key, "relaying an outbox entry failed; retrying later");
                }
            }
        }
    }

    /// Moves the entry at `key`, if it is still there.
    async fn relay_key(&self, key: &str) {
        let moved = match self.kv.get(key).await {
            Ok(None) => Ok(()),
            Ok(Some(value)) => self.relay(key, &value).await,
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            tracing::error!(error = %format!("{e:#}"), %key, "relaying an outbox entry failed; the next sweep retries");
        }
    }

    /// Appends the entry's events, deleting it in the same step.
    async fn relay(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        let events: Vec<Event> = serde_json::from_slice(value).unwrap_or_else(|_| {
            tracing::error!(%key, "unreadable outbox entry dropped");
            Vec::new()
        });
        if self.log.append(events, Some(key)).await?.is_none() {
            tracing::debug!(%key, "outbox entry already moved by another host");
        }
        Ok(())
    }
}
