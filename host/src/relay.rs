//! The relay: moves events the components published into the outbox over to the
//! sequenced event log, then hands them to the hub.
//!
//! Each step is one atomic batch (log entries + sequence counter written, outbox keys
//! deleted), so an acknowledged event is neither lost nor sequenced twice, even if the
//! host is killed mid-way. The relay runs when a component it hosts writes the outbox
//! (immediately) and on a poll interval (for components running elsewhere, e.g. under
//! `spin up`, sharing the store).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use vigil_core::celery_metrics::CeleryMetrics;
use vigil_core::event::Event;
use vigil_core::keys;

use vigil_kv::KvBackend;
use vigil_push::hub::{Hub, Published};
use vigil_runtime::key_value::WriteWatch;

/// Outbox entries moved per step.
const STEP: usize = 256;
/// Events kept in the log for resume and long-poll, unless configured otherwise; older
/// ones are deleted.
pub const HISTORY: u64 = 10_000;

/// Wakes the relay when a component this host runs writes an outbox entry, so events
/// move at once instead of at the next poll.
pub struct OutboxWatch(pub Arc<Notify>);

impl WriteWatch for OutboxWatch {
    fn written(&self, _label: &str, key: &str) {
        if key.starts_with(keys::OUTBOX_PREFIX) {
            self.0.notify_one();
        }
    }
}

/// The Celery domain metrics `/metrics` shows, fed by every event this host relays.
pub type SharedCeleryMetrics = Arc<std::sync::Mutex<CeleryMetrics>>;

/// Moves outbox entries into the log and publishes them.
pub struct Relay {
    kv: Arc<dyn KvBackend>,
    hub: Hub,
    seq: u64,
    history: u64,
    metrics: SharedCeleryMetrics,
}

impl Relay {
    /// A relay continuing the sequence stored in `kv`, counting what it relays in `metrics`.
    pub async fn new(
        kv: Arc<dyn KvBackend>,
        hub: Hub,
        history: u64,
        metrics: SharedCeleryMetrics,
    ) -> anyhow::Result<Self> {
        let seq = match kv.get(keys::SEQ_KEY).await? {
            Some(b) => String::from_utf8_lossy(&b).parse()?,
            None => 0,
        };
        Ok(Self {
            kv,
            hub,
            seq,
            history: history.max(1),
            metrics,
        })
    }

    /// Runs until the hub is gone.
    pub async fn run(mut self, published: Arc<Notify>, poll: Duration) {
        loop {
            match self.drain().await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %format!("{e:#}"), "relay step failed; retrying"),
            }
            if self.hub.is_closed() {
                return;
            }
            tokio::select! {
                _ = published.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Moves everything in the outbox; returns how many events it published.
    pub async fn drain(&mut self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let entries = self.kv.scan_prefix(keys::OUTBOX_PREFIX, STEP).await?;
            if entries.is_empty() {
                return Ok(total);
            }
            total += self.step(entries).await?;
        }
    }

    async fn step(&mut self, entries: Vec<(String, Vec<u8>)>) -> anyhow::Result<usize> {
        let mut seq = self.seq;
        let mut sets = Vec::new();
        let mut deletes = Vec::new();
        let mut out = Vec::new();
        for (key, value) in entries {
            deletes.push(key.clone());
            let Ok(events) = serde_json::from_slice::<Vec<Event>>(&value) else {
                tracing::error!(%key, "unreadable outbox entry dropped");
                continue;
            };
            for mut event in events {
                seq += 1;
                event.seq = seq;
                let json = serde_json::to_string(&event)?;
                sets.push((keys::event(seq), json.clone().into_bytes()));
                out.push(Arc::new(Published { event, json }));
            }
        }
        sets.push((keys::SEQ_KEY.to_owned(), seq.to_string().into_bytes()));
        deletes.extend(
            (self.seq + 1..=seq)
                .filter(|s| *s > self.history)
                .map(|s| keys::event(s - self.history)),
        );
        self.kv.write_batch(sets, deletes).await?;
        self.seq = seq;
        if let Ok(mut m) = self.metrics.lock() {
            out.iter().for_each(|p| m.observe(&p.event));
        }
        let n = out.len();
        if n > 0 {
            self.hub.publish(out).await;
        }
        Ok(n)
    }
}
