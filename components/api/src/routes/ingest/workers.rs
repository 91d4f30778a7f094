//! Worker events in a batch: `worker-*`, the bridge's `worker-stats`, and the counts
//! task events add to the worker that sent them.

use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::keys;
use vigil_core::worker::{self, Worker, WorkerChange, WorkerEvent, WorkerStats};

use super::Batch;

impl Batch<'_> {
    pub(super) fn worker(&mut self, ev: &WorkerEvent) -> Result<(), ApiError> {
        let current = self.load_worker(&ev.hostname)?;
        let (w, change) = worker::apply(current, ev, self.now);
        self.publish_worker(&w, change);
        self.workers.insert(w.id.clone(), w);
        Ok(())
    }

    pub(super) fn worker_stats(&mut self, report: &WorkerStats) -> Result<(), ApiError> {
        let current = self.load_worker(&report.hostname)?;
        let w = worker::record_stats(current, report, self.now);
        self.publish_worker(&w, WorkerChange::Updated);
        self.workers.insert(w.id.clone(), w);
        Ok(())
    }

    /// Counts a task event for the worker that sent it (no event published: the next
    /// heartbeat carries the counts).
    pub(super) fn count_task_event(
        &mut self,
        hostname: &str,
        kind: &str,
        ts: f64,
    ) -> Result<(), ApiError> {
        let current = self.load_worker(hostname)?;
        let w = worker::count_task_event(current, hostname, kind, ts);
        self.workers.insert(w.id.clone(), w);
        Ok(())
    }

    fn load_worker(&mut self, hostname: &str) -> Result<Option<Worker>, ApiError> {
        match self.workers.remove(hostname) {
            Some(w) => Ok(Some(w)),
            None => self.kv.get(&keys::worker(hostname)),
        }
    }

    fn publish_worker(&mut self, w: &Worker, change: WorkerChange) {
        let mut e = Event::new(
            change.event_name(),
            event::WORKERS_TOPIC,
            self.now_ms,
            serde_json::to_value(w).unwrap_or_default(),
        );
        e.key = Some(w.id.clone());
        e.state = serde_json::to_value(w.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        self.events.push(e);
    }
}
