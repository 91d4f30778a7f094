//! `POST /api/v1/events`: producers report task, worker, queue and metrics events
//! (Celery's event format plus Vigil's own types).
//!
//! - [`tasks`]: task events — the record, its history and children, the breaker's count.
//! - [`workers`]: worker events, `inspect stats` reports, task counts per worker.

mod tasks;
mod workers;

use std::collections::HashMap;

use spin_sdk::http::Response;
use vigil_core::breaker::{Breaker, BreakerConfig};
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::history::History;
use vigil_core::ingest::{parse_body, IngestEvent};
use vigil_core::task::Task;
use vigil_core::worker::Worker;
use vigil_core::{jobs, keys};

use crate::request::Req;
use crate::store::Kv;

/// Parses the body by the batch rule (see [`vigil_core::ingest`]), applies the usable
/// events in memory, writes the records, then publishes the events. It answers 202 —
/// with the refused events listed — only once the events are durable in the outbox; a
/// failure before that answers 503 and the producer retries (applying an event twice is
/// harmless). A breaker never refuses an event: events are facts about the cluster.
pub fn post(req: &Req) -> Result<Response, ApiError> {
    crate::auth::producer(req)?;
    let parsed = parse_body(&req.body)?;
    let kv = Kv::open()?;
    let mut batch = Batch::new(&kv);
    for ev in &parsed.events {
        batch.apply(ev)?;
    }
    batch.commit()?;
    Ok(crate::json_response(202, &parsed.answer()))
}

/// A batch being applied: records loaded once, written once at the end.
pub struct Batch<'a> {
    kv: &'a Kv,
    now: f64,
    now_ms: u64,
    cfg: BreakerConfig,
    tasks: HashMap<String, Task>,
    histories: HashMap<String, History>,
    children: HashMap<String, Vec<String>>,
    workers: HashMap<String, Worker>,
    breakers: HashMap<String, Breaker>,
    others: Vec<(String, serde_json::Value)>,
    events: Vec<Event>,
    /// The batch reported queue statistics: publish seed 003's `queue-status` after it.
    queues_reported: bool,
    /// The batch reported system metrics: publish seed 003's `system-metrics` after it.
    metrics_reported: bool,
}

impl<'a> Batch<'a> {
    /// An empty batch at the current time.
    pub fn new(kv: &'a Kv) -> Self {
        Self {
            kv,
            now: crate::clock::secs(),
            now_ms: crate::clock::millis(),
            cfg: BreakerConfig::default(),
            tasks: HashMap::new(),
            histories: HashMap::new(),
            children: HashMap::new(),
            workers: HashMap::new(),
            breakers: HashMap::new(),
            others: Vec::new(),
            events: Vec::new(),
            queues_reported: false,
            metrics_reported: false,
        }
    }

    /// Applies one event in memory.
    pub fn apply(&mut self, ev: &IngestEvent) -> Result<(), ApiError> {
        match ev {
            IngestEvent::Task(t) => self.task(t),
            IngestEvent::Worker(w) => self.worker(w),
            IngestEvent::WorkerStats(s) => self.worker_stats(s),
            IngestEvent::QueueStats(q) => {
                let mut q = q.clone();
                if q.reported_at == 0.0 {
                    q.reported_at = self.now;
                }
                let data = serde_json::to_value(&q).unwrap_or_default();
                self.events.push(Event::new(
                    "queue_stats",
                    event::QUEUES_TOPIC,
                    self.now_ms,
                    data.clone(),
                ));
                self.others
                    .push((format!("{}{}", keys::QUEUE_PREFIX, q.name), data));
                self.queues_reported = true;
                Ok(())
            }
            IngestEvent::SystemMetrics(m) => {
                let data = serde_json::Value::Object(m.clone());
                self.events.push(Event::new(
                    "metrics_update",
                    event::METRICS_TOPIC,
                    self.now_ms,
                    data.clone(),
                ));
                self.others.push((keys::SYSTEM_METRICS.to_owned(), data));
                self.metrics_reported = true;
                Ok(())
            }
        }
    }

    /// The queue's breaker, loaded once per batch (a closed one if none is stored).
    fn breaker(&mut self, queue: &str) -> Result<&mut Breaker, ApiError> {
        if !self.breakers.contains_key(queue) {
            let stored = self.kv.get(&keys::breaker(queue))?;
            self.breakers.insert(
                queue.to_owned(),
                stored.unwrap_or_else(|| Breaker::new(queue)),
            );
        }
        Ok(self.breakers.get_mut(queue).expect("inserted above"))
    }

    /// Queues an extra event (e.g. a command) to publish with the batch.
    pub fn publish(&mut self, e: Event) {
        self.events.push(e);
    }

    /// Writes every record, then publishes the events (and the seed 003 summaries the
    /// new records imply, read back once they are written).
    pub fn commit(mut self) -> Result<(), ApiError> {
        for t in self.tasks.values() {
            self.kv.put(&keys::task(&t.id), t)?;
        }
        for (id, h) in &self.histories {
            self.kv.put(&keys::history(id), h)?;
        }
        for (id, c) in &self.children {
            self.kv.put(&keys::children(id), c)?;
        }
        for w in self.workers.values() {
            self.kv.put(&keys::worker(&w.id), w)?;
        }
        for b in self.breakers.values() {
            self.kv.put(&keys::breaker(&b.queue), b)?;
        }
        for (k, v) in &self.others {
            self.kv.put(k, v)?;
        }
        self.summaries()?;
        self.kv.publish(&self.events)
    }

    fn summaries(&mut self) -> Result<(), ApiError> {
        if !self.queues_reported && !self.metrics_reported {
            return Ok(());
        }
        let queues = super::workers::summaries(self.kv)?;
        let workers = super::workers::with_status(self.kv)?;
        if self.queues_reported {
            let statuses: Vec<_> = workers.iter().map(|(_, s)| *s).collect();
            self.events.push(Event::new(
                jobs::QUEUE_STATUS,
                event::QUEUES_TOPIC,
                self.now_ms,
                jobs::queue_status(&queues, &statuses),
            ));
        }
        if self.metrics_reported {
            let data = super::metrics::system(self.kv, &queues, &workers)?;
            self.events.push(Event::new(
                jobs::SYSTEM_METRICS,
                event::METRICS_TOPIC,
                self.now_ms,
                data,
            ));
        }
        Ok(())
    }
}
