//! A batch of ingested events, applied as one: task records are read with
//! compare-and-swap handles, the whole batch is checked (an open breaker refuses it
//! whole, before anything is written), then written — each record once, re-applied if
//! a concurrent writer got there first — and the events are published in the order
//! they came, computed from the records as committed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use vigil_core::breaker::{Breaker, BreakerConfig};
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::ingest::{IngestEvent, TaskEvent};
use vigil_core::queue::ReportedQueue;
use vigil_core::task::{Task, TaskState};
use vigil_core::worker::{Worker, WorkerChange, WorkerEvent};
use vigil_core::{apply, jobs, keys};
use vigil_store::tasks::{self, Change};

use crate::store::{api_error, Kv};

/// One ingested event, kept in arrival order for publishing.
enum Slot {
    /// The `n`th event of a task in this batch.
    Task(String, usize),
    Worker(String),
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
        }
    }

    /// Adds one event.
    pub fn apply(&mut self, ev: &IngestEvent) -> Result<(), ApiError> {
        match ev {
            IngestEvent::Task(t) => {
                let evs = self.task_events.entry(t.uuid.clone()).or_default();
                if evs.is_empty() {
                    self.task_ids.push(t.uuid.clone());
                }
                self.order.push(Slot::Task(t.uuid.clone(), evs.len()));
                evs.push(t.clone());
            }
            IngestEvent::Worker(w) => {
                let evs = self.worker_events.entry(w.hostname.clone()).or_default();
                evs.push(w.clone());
                self.order.push(Slot::Worker(w.hostname.clone()));
            }
            IngestEvent::QueueStats(q) => {
                let mut q = q.clone();
                if q.reported_at == 0.0 {
                    q.reported_at = self.now;
                }
                self.order.push(Slot::Queue(q));
            }
            IngestEvent::SystemMetrics(m) => self.order.push(Slot::Metrics(m.clone())),
        }
        Ok(())
    }

    /// Queues an extra event (e.g. a command) to publish with the batch.
    pub fn publish(&mut self, e: Event) {
        self.order.push(Slot::Extra(e));
    }

    /// Writes the batch and publishes its events; how many tasks it finished.
    pub fn commit(self) -> Result<usize, ApiError> {
        let (now, events) = (self.now, &self.task_events);
        let mut fold = |id: &str, cur: Option<Task>| {
            let evs = events.get(id).map(Vec::as_slice).unwrap_or_default();
            let t = evs.iter().fold(cur, |t, e| Some(apply::apply(t, e, now)));
            t.unwrap_or_else(|| Task::new(id))
        };
        let plan = tasks::prepare(self.kv, &self.task_ids, &mut fold).map_err(api_error)?;
        self.admit(&plan)?;
        let changes = tasks::commit(self.kv, plan, now, &mut fold).map_err(api_error)?;
        let workers = super::records::workers(self.kv, &self.worker_events, now)?;
        super::records::reports(
            self.kv,
            self.order.iter().filter_map(|s| match s {
                Slot::Queue(q) => Some(q),
                _ => None,
            }),
        )?;
        let before: HashMap<String, Option<Task>> = changes
            .iter()
            .map(|c| (c.after.id.clone(), c.before.clone()))
            .collect();
        let finished = changes.iter().filter(|c| newly_finished(c)).count();
        self.publish_all(before, workers)?;
        Ok(finished)
    }

    /// Refuses the batch if it creates a task on a queue whose breaker is open.
    fn admit(&self, plan: &tasks::Plan<<Kv as vigil_store::kv::Kv>::Cas>) -> Result<(), ApiError> {
        for p in &plan.tasks {
            let before = p.before.as_ref().and_then(|s| s.task.as_ref());
            let is_new = before.is_none_or(|t| t.state == TaskState::Pending);
            let evs = self
                .task_events
                .get(&p.id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let received = evs.iter().any(|e| e.state == TaskState::Received);
            let Some(queue) = p.after.queue.as_deref().filter(|_| is_new && received) else {
                continue;
            };
            if let Some(b) = self.kv.get::<Breaker>(&keys::breaker(queue))? {
                if !b.admits(self.now, &self.cfg) {
                    return Err(ApiError::circuit_open(queue, b.reason.as_deref()));
                }
            }
        }
        Ok(())
    }
}

/// The breaker outcome a task stands for: its queue and whether it succeeded, once it
/// has both a queue and a success or failure.
fn outcome(t: &Task) -> Option<(String, bool)> {
    let ok = match t.state {
        TaskState::Success => true,
        TaskState::Failure => false,
        _ => return None,
    };
    Some((t.queue.clone()?, ok))
}

fn newly_finished(c: &Change) -> bool {
    c.after.state.is_terminal() && c.before.as_ref().is_none_or(|b| !b.state.is_terminal())
}

impl Batch<'_> {
    /// Publishes every event in arrival order, from the records as committed; then the
    /// breaker changes the outcomes caused and seed 003's summaries.
    fn publish_all(
        self,
        tasks: HashMap<String, Option<Task>>,
        workers: HashMap<String, VecDeque<(Worker, WorkerChange)>>,
    ) -> Result<(), ApiError> {
        let mut r = Replay {
            now: self.now,
            now_ms: self.now_ms,
            tasks,
            workers,
            out: Vec::new(),
            outcomes: BTreeMap::new(),
            queues_reported: false,
            metrics: None,
        };
        for slot in self.order {
            r.slot(slot, &self.task_events);
        }
        let mut out = r.out;
        let records =
            super::records::breakers(self.kv, &r.outcomes, self.now, self.now_ms, &self.cfg)?;
        out.extend(records);
        let summaries =
            super::records::summaries(self.kv, r.queues_reported, r.metrics, self.now_ms)?;
        out.extend(summaries);
        self.kv.publish(&out)
    }
}

/// The events of a committed batch, rebuilt in arrival order from the records' states
/// before the batch: each task event applied in turn, as a single writer would have.
struct Replay {
    now: f64,
    now_ms: u64,
    tasks: HashMap<String, Option<Task>>,
    workers: HashMap<String, VecDeque<(Worker, WorkerChange)>>,
    out: Vec<Event>,
    outcomes: BTreeMap<String, Vec<bool>>,
    queues_reported: bool,
    metrics: Option<serde_json::Value>,
}

impl Replay {
    fn slot(&mut self, slot: Slot, task_events: &HashMap<String, Vec<TaskEvent>>) {
        let now_ms = self.now_ms;
        match slot {
            Slot::Task(id, n) => {
                if let Some(ev) = task_events.get(&id).and_then(|evs| evs.get(n)) {
                    self.task(&id, ev);
                }
            }
            Slot::Worker(id) => {
                if let Some((w, change)) = self.workers.get_mut(&id).and_then(|q| q.pop_front()) {
                    self.out
                        .push(super::records::worker_event(&w, change, now_ms));
                }
            }
            Slot::Queue(q) => {
                let data = serde_json::to_value(&q).unwrap_or_default();
                self.out
                    .push(Event::new("queue_stats", event::QUEUES_TOPIC, now_ms, data));
                self.queues_reported = true;
            }
            Slot::Metrics(m) => {
                let data = serde_json::Value::Object(m);
                let e = Event::new("metrics_update", event::METRICS_TOPIC, now_ms, data.clone());
                self.out.push(e);
                self.metrics = Some(data);
            }
            Slot::Extra(e) => self.out.push(e),
        }
    }

    /// One task event: its `task_update`, seed 003's job event, `batch_progress`; and
    /// the outcome for the queue's breaker once the task is finished with a known queue
    /// (whichever of its events arrives last, so arrival order does not matter). An
    /// expired task's events were not applied, and are not published.
    fn task(&mut self, id: &str, ev: &TaskEvent) {
        let Some(cur) = self.tasks.get_mut(id) else {
            return;
        };
        let before = cur.as_ref().and_then(outcome);
        let t = apply::apply(cur.take(), ev, self.now);
        if let Some((q, ok)) = outcome(&t).filter(|o| before.as_ref() != Some(o)) {
            self.outcomes.entry(q).or_default().push(ok);
        }
        self.out.push(Event::task_update(&t, self.now_ms));
        self.out.push(jobs::job_event(&t, self.now_ms));
        if t.total_batches.is_some() {
            self.out.push(Event::batch_progress(&t, self.now_ms));
        }
        *cur = Some(t);
    }
}
