//! `POST /api/v1/events`: producers report task, worker, queue and metrics events
//! (Celery's event format plus Vigil's own types).

use std::collections::HashMap;

use spin_sdk::http::Response;
use vigil_core::breaker::{Breaker, BreakerConfig};
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::ingest::{parse_body, IngestEvent, TaskEvent};
use vigil_core::task::{Task, TaskState};
use vigil_core::worker::{self, Worker, WorkerEvent};
use vigil_core::{apply, jobs, keys};

use crate::request::Req;
use crate::store::Kv;

/// Validates the whole batch, applies it in memory (refusing it whole if a breaker is
/// open), writes the records, then publishes the events. It answers 202 only once the
/// events are durable in the outbox; a failure before that answers 503 and the producer
/// retries (applying an event twice is harmless).
pub fn post(req: &Req) -> Result<Response, ApiError> {
    crate::auth::producer(req)?;
    let events = parse_body(&req.body)?;
    let kv = Kv::open()?;
    let mut batch = Batch::new(&kv);
    for ev in &events {
        batch.apply(ev)?;
    }
    batch.commit()?;
    Ok(crate::json_response(
        202,
        &serde_json::json!({ "accepted": events.len() }),
    ))
}

/// A batch being applied: records loaded once, written once at the end.
pub struct Batch<'a> {
    kv: &'a Kv,
    now: f64,
    now_ms: u64,
    cfg: BreakerConfig,
    tasks: HashMap<String, Task>,
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

    fn task(&mut self, ev: &TaskEvent) -> Result<(), ApiError> {
        let current = match self.tasks.remove(&ev.uuid) {
            Some(t) => Some(t),
            None => self.kv.get(&keys::task(&ev.uuid))?,
        };
        let is_new = current
            .as_ref()
            .is_none_or(|t| t.state == TaskState::Pending);
        let before = current.as_ref().map(|t| t.state);
        let task = apply::apply(current, ev, self.now);
        if let Some(queue) = task.queue.clone() {
            let (now, cfg) = (self.now, self.cfg);
            let breaker = self.breaker(&queue)?;
            if is_new && ev.state == TaskState::Received && !breaker.admits(now, &cfg) {
                return Err(ApiError::circuit_open(&queue, breaker.reason.as_deref()));
            }
            if before != Some(task.state)
                && matches!(task.state, TaskState::Success | TaskState::Failure)
            {
                self.record_outcome(&queue, task.state == TaskState::Success)?;
            }
        }
        self.events.push(Event::task_update(&task, self.now_ms));
        self.events.push(jobs::job_event(&task, self.now_ms));
        if task.total_batches.is_some() {
            self.events.push(Event::batch_progress(&task, self.now_ms));
        }
        self.tasks.insert(task.id.clone(), task);
        Ok(())
    }

    /// The queue's breaker, loaded once per batch (a closed one if none is stored).
    fn breaker(&mut self, queue: &str) -> Result<&mut Breaker, ApiError> {
        if !self.breakers.contains_key(queue) {
            let stored = self.kv.get(&format!("{}{queue}", keys::BREAKER_PREFIX))?;
            self.breakers.insert(
                queue.to_owned(),
                stored.unwrap_or_else(|| Breaker::new(queue)),
            );
        }
        Ok(self.breakers.get_mut(queue).expect("inserted above"))
    }

    fn record_outcome(&mut self, queue: &str, success: bool) -> Result<(), ApiError> {
        let (now, now_ms, cfg) = (self.now, self.now_ms, self.cfg);
        let b = self.breaker(queue)?;
        if b.record(success, now, &cfg) {
            let status = b.status(now, &cfg);
            self.events.push(Event::new(
                "circuit_breaker",
                event::BREAKERS_TOPIC,
                now_ms,
                status,
            ));
        }
        Ok(())
    }

    fn worker(&mut self, ev: &WorkerEvent) -> Result<(), ApiError> {
        let current = match self.workers.remove(&ev.hostname) {
            Some(w) => Some(w),
            None => self
                .kv
                .get(&format!("{}{}", keys::WORKER_PREFIX, ev.hostname))?,
        };
        let (w, change) = worker::apply(current, ev, self.now);
        let mut e = Event::new(
            change.event_name(),
            event::WORKERS_TOPIC,
            self.now_ms,
            serde_json::to_value(&w).unwrap_or_default(),
        );
        e.key = Some(w.id.clone());
        e.state = serde_json::to_value(w.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        self.events.push(e);
        self.workers.insert(w.id.clone(), w);
        Ok(())
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
        for w in self.workers.values() {
            self.kv
                .put(&format!("{}{}", keys::WORKER_PREFIX, w.id), w)?;
        }
        for b in self.breakers.values() {
            self.kv
                .put(&format!("{}{}", keys::BREAKER_PREFIX, b.queue), b)?;
        }
        for (k, v) in &self.others {
            self.kv.put(k, v)?;
        }
        if self.queues_reported || self.metrics_reported {
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
        }
        self.kv.publish(&self.events)
    }
}
