//! What the hub's timers do, for every subscriber at once (no timer per connection):
//! heartbeats for the transports that want them, and each flush tick's held updates as
//! `batch_update`s (and a degraded subscriber's recovery once its queue drained).

use std::sync::Arc;

use super::frames::wit_event;
use super::task::HubTask;
use super::{control, Payload, Published, Wire, RECOVERED_EVENT};
use crate::dispatch;
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
    pub(super) async fn flush(&mut self) {
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
            let n = self.subs[i].held.len().min(self.config.batch_max);
            let batch: Vec<Arc<Published>> = self.subs[i].held.drain(..n).collect();
            let wit_events: Vec<dispatch::Event> = batch.iter().map(|p| wit_event(p)).collect();
            let spec = &self.subs[i].spec;
            let frame = match self
                .dispatch
                .encode_batch(&wit_events, spec.encoding, spec.gzip)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "encoding a batch failed");
                    continue;
                }
            };
            let seq = batch.last().map_or(0, |p| p.event.seq);
            let msg = Arc::new(Payload::new(
                "batch_update".into(),
                seq,
                frame.bytes.into(),
                frame.binary,
            ));
            Metrics::inc(&self.metrics.batches);
            self.metrics.sent(&msg.kind, msg.bytes.len(), 1);
            self.subs[i].send(msg, &self.metrics);
        }
        self.remove_closed();
    }
}
