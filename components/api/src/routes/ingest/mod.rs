//! `POST /api/v1/events`: producers report task, worker, queue and metrics events
//! (Celery's event format plus Vigil's own types).
//!
//! Every record a batch touches is changed by compare-and-swap, so producers posting at
//! once — on one host or many — all count, and end as if their events had been applied
//! one by one in time order:
//!
//! - [`tasks`]: task events — each task's history extended, its record recomputed from
//!   the history and written with its index entries and counters (`vigil-store`), its
//!   parent's children, and what its events count for its worker.
//! - [`workers`]: worker events, `inspect stats` reports and task counts, one swap per
//!   worker per batch.
//! - [`publish`]: the published events, in arrival order, from the records as written;
//!   the breakers the finished tasks count for; seed 003's summaries.

mod publish;
mod tasks;
mod workers;

use std::collections::{BTreeMap, HashMap};

use spin_sdk::http::Response;
use vigil_core::breaker::BreakerConfig;
use vigil_core::error::ApiError;
use vigil_core::event::Event;
use vigil_core::ingest::{parse_body, IngestEvent, TaskEvent};
use vigil_core::queue::ReportedQueue;
use vigil_core::worker::{WorkerEvent, WorkerStats};

use crate::request::Req;
use crate::store::Kv;

/// Parses the body by the batch rule (see [`vigil_core::ingest`]), applies the usable
/// events, writes the records, then publishes the events. It answers 202 — with the
/// refused events listed — only once the events are durable in the outbox; a failure
/// before that answers 503 and the producer retries (an event recorded twice counts
/// once: the task's history keeps it once). A breaker never refuses an event: events are
/// facts about the cluster. A batch that finished tasks also expires a bounded number
/// of old ones (see [`super::retention`]).
pub fn post(req: &Req) -> Result<Response, ApiError> {
    crate::auth::producer(req)?;
    let parsed = parse_body(&req.body)?;
    let kv = Kv::open()?;
    let mut batch = Batch::new(&kv);
    for ev in &parsed.events {
        batch.apply(ev)?;
    }
    let finished = batch.commit()?;
    super::retention::after_ingest(&kv, finished);
    Ok(crate::json_response(202, &parsed.answer()))
}

/// One event of the batch, kept in arrival order for publishing.
enum Slot {
    /// The `n`th event of a task in this batch.
    Task(String, usize),
    Worker(String),
    Stats(String),
    Queue(ReportedQueue),
    Metrics(serde_json::Map<String, serde_json::Value>),
    Extra(Event),
}

/// A batch being applied: collected by [`Batch::apply`], written by [`Batch::commit`].
pub struct Batch<'a> {
    kv: &'a Kv,
    now: f64,
    now_ms: u64,
    cfg: BreakerConfig,
    order: Vec<Slot>,
    task_ids: Vec<String>,
    task_events: HashMap<String, Vec<TaskEvent>>,
    worker_events: BTreeMap<String, Vec<WorkerEvent>>,
    worker_stats: BTreeMap<String, Vec<WorkerStats>>,
}

impl<'a> Batch<'a> {
    /// An empty batch at the current time.
    pub fn new(kv: &'a Kv) -> Self {
        Self {
            kv,
            now: crate::clock::secs(),
            now_ms: crate::clock::millis(),
            cfg: BreakerConfig::default(),
            order: Vec::new(),
            task_ids: Vec::new(),
            task_events: HashMap::new(),
            worker_events: BTreeMap::new(),
            worker_stats: BTreeMap::new(),
        }
    }

    /// Adds one event.
    pub fn apply(&mut self, ev: &IngestEvent) -> Result<(), ApiError> {
        let slot = match ev {
            IngestEvent::Task(t) => {
                let evs = self.task_events.entry(t.uuid.clone()).or_default();
                if evs.is_empty() {
                    self.task_ids.push(t.uuid.clone());
                }
                evs.push(t.clone());
                Slot::Task(t.uuid.clone(), evs.len() - 1)
            }
            IngestEvent::Worker(w) => {
                let evs = self.worker_events.entry(w.hostname.clone()).or_default();
                evs.push(w.clone());
                Slot::Worker(w.hostname.clone())
            }
            IngestEvent::WorkerStats(s) => {
                let reports = self.worker_stats.entry(s.hostname.clone()).or_default();
                reports.push(s.clone());
                Slot::Stats(s.hostname.clone())
            }
            IngestEvent::QueueStats(q) => {
                let mut q = q.clone();
                if q.reported_at == 0.0 {
                    q.reported_at = self.now;
                }
                Slot::Queue(q)
            }
            IngestEvent::SystemMetrics(m) => Slot::Metrics(m.clone()),
        };
        self.order.push(slot);
        Ok(())
    }

    /// Queues an extra event (e.g. a command) to publish with the batch.
    pub fn publish(&mut self, e: Event) {
        self.order.push(Slot::Extra(e));
    }

    /// Writes the batch and publishes its events; returns how many tasks it finished.
    pub fn commit(self) -> Result<usize, ApiError> {
        let tasks = self.commit_tasks()?;
        let workers = self.commit_workers(&tasks.worker_counts)?;
        let reports = self.order.iter().filter_map(|s| match s {
            Slot::Queue(q) => Some(q),
            _ => None,
        });
        super::records::reports(self.kv, reports)?;
        let finished = tasks.finished();
        self.publish_all(tasks, workers)?;
        Ok(finished)
    }
}
