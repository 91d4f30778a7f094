//! What the hub's timers do, for every subscriber at once (no timer per connection):
//! heartbeats for the transports that want them, and each flush tick's held updates as
//! `batch_update`s (and a degraded subscriber's recovery once its queue drained), each
//! distinct batch encoded once.

use std::collections::HashMap;
use std::sync::Arc;

use super::frames::wit_event;
use super::task::HubTask;
use super::{control, Payload, Published, Wire, RECOVERED_EVENT};
use crate::dispatch::{self, Encoding};
use crate::metrics::Metrics;

impl HubTask {
    /// Queues a heartbeat for every subscriber that wants them: one timer for all.
    pub(super) fn heartbeat(&mut self) {
        for sub in self.subs.iter().filter(|s| s.spec.heartbeat) {
            let _ = sub.out.push_control(Wire::Heartbeat);
        }
    }

    /// Sends each subscriber's held updates as `batch_update`s of at most `batch_max`;
    /// a degraded subscriber only while its queue has room, and it recovers once drained.
    /// Connections sharing a subscription hold the very same updates: their batch is
    /// encoded once and its payload shared.
    pub(super) async fn flush(&mut self) {
        let mut encoded: HashMap<BatchKey, Encoded> = HashMap::new();
        for i in 0..self.subs.len() {
            let sub = &mut self.subs[i];
            if sub.degraded && sub.out.is_empty() && sub.held.is_empty() {
                sub.degraded = false;
                let marker = serde_json::json!({ "type": RECOVERED_EVENT });
                sub.send(control(RECOVERED_EVENT, &marker), &self.metrics);
            }
            if sub.held.is_empty() || (sub.degraded && sub.nearly_full()) {
                continue;
            }
            let n = sub.held.len().min(self.config.batch_max);
            let batch: Vec<Arc<Published>> = sub.held.drain(..n).collect();
            let key = (
                batch.iter().map(|p| Arc::as_ptr(p) as usize).collect(),
                sub.spec.encoding,
                sub.spec.gzip,
            );
            let msg = match encoded.get(&key) {
                Some((_, msg)) => msg.clone(),
                None => {
                    let Some(msg) = self.encode_batch(&batch, key.1, key.2).await else {
                        continue;
                    };
                    // The batch is kept with its payload so no event it names is freed
                    // (and its address reused) while the flush runs.
                    encoded.insert(key, (batch, msg.clone()));
                    msg
                }
            };
            Metrics::inc(&self.metrics.batches);
            self.metrics.sent(&msg.kind, msg.bytes.len(), 1);
            self.subs[i].send(msg, &self.metrics);
        }
        self.remove_closed();
    }

    /// `batch` as one `batch_update` payload; `None` (logged) if the component failed.
    async fn encode_batch(
        &mut self,
        batch: &[Arc<Published>],
        encoding: Encoding,
        gzip: bool,
    ) -> Option<Arc<Payload>> {
        let wit_events: Vec<dispatch::Event> = batch.iter().map(|p| wit_event(p)).collect();
        let frame = match self
            .dispatch
            .encode_batch(&wit_events, encoding, gzip)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "encoding a batch failed");
                return None;
            }
        };
        let seq = batch.last().map_or(0, |p| p.event.seq);
        Some(Arc::new(Payload::new(
            "batch_update".into(),
            seq,
            frame.bytes.into(),
            frame.binary,
        )))
    }
}

/// A batch by the identity of the events in it, in one encoding.
type BatchKey = (Vec<usize>, Encoding, bool);
/// The batch's events and its payload.
type Encoded = (Vec<Arc<Published>>, Arc<Payload>);
