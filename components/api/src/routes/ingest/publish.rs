//! The events a committed batch publishes, in the order its events came: for a task,
//! each of its events applied in turn to the record as it was before the batch, the last
//! one showing the record as written; for a worker, the record after each of its events.
//! Then the breakers the finished tasks count for, and seed 003's summaries. A task
//! change is one `task_update`: its seed 003 job notification is derived by the log's
//! readers (`vigil_core::jobs::derived`), not logged.

use std::collections::{BTreeMap, HashMap};

use vigil_core::apply;
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::ingest::TaskEvent;
use vigil_core::task::{Task, TaskState};
use vigil_core::worker::WorkerChange;
use vigil_store::tasks::Change;

use super::tasks::TaskOutcome;
use super::workers::Snapshots;
use super::{Batch, Slot};
use crate::routes::records;

/// The breaker outcome a task stands for: its queue and whether it succeeded, once it
/// has both a queue and a success or failure (whichever of its events came last).
fn outcome(t: &Task) -> Option<(String, bool)> {
    let ok = match t.state {
        TaskState::Success => true,
        TaskState::Failure => false,
        _ => return None,
    };
    Some((t.queue.clone()?, ok))
}

/// Each queue's new outcomes: a task counts once, when it first stands for one.
fn outcomes(changes: &HashMap<String, Change>) -> BTreeMap<String, Vec<bool>> {
    let mut out: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for c in changes.values() {
        let before = c.before.as_ref().and_then(outcome);
        if let Some((q, ok)) = outcome(&c.after).filter(|o| before.as_ref() != Some(o)) {
            out.entry(q).or_default().push(ok);
        }
    }
    out
}

struct Out {
    now: f64,
    now_ms: u64,
    events: Vec<Event>,
    queues_reported: bool,
    metrics: Option<serde_json::Value>,
}

impl Out {
    fn task(&mut self, t: &Task) {
        self.events.push(Event::task_update(t, self.now_ms));
        if t.total_batches.is_some() {
            self.events.push(Event::batch_progress(t, self.now_ms));
        }
    }

    /// The `n`th of a task's `evs`: the record as written for the last one, else the
    /// events so far applied to the record before the batch.
    fn task_event(&mut self, state: &mut (Option<Task>, &Change), evs: &[TaskEvent], n: usize) {
        if n + 1 == evs.len() {
            self.task(&state.1.after);
            return;
        }
        let t = apply::apply(state.0.take(), &evs[n], self.now);
        self.task(&t);
        state.0 = Some(t);
    }
}

impl Out {
    /// The events of one slot of the batch.
    fn slot(
        &mut self,
        slot: &Slot,
        b: &Batch<'_>,
        states: &mut States<'_>,
        workers: &mut Snapshots,
    ) {
        let now_ms = self.now_ms;
        match slot {
            Slot::Task(id, n) => {
                // An expired task is not in `states`: its events were dropped.
                if let (Some(state), Some(evs)) =
                    (states.get_mut(id.as_str()), b.task_events.get(id))
                {
                    self.task_event(state, evs, *n);
                }
            }
            Slot::Worker(host) => {
                if let Some((w, change)) =
                    workers.get_mut(host).and_then(|(evs, _)| evs.pop_front())
                {
                    self.events.push(records::worker_event(&w, change, now_ms));
                }
            }
            Slot::Stats(host) => {
                if let Some(w) = workers.get_mut(host).and_then(|(_, st)| st.pop_front()) {
                    self.events
                        .push(records::worker_event(&w, WorkerChange::Updated, now_ms));
                }
            }
            Slot::Queue(q) => {
                let data = serde_json::to_value(q).unwrap_or_default();
                self.events
                    .push(Event::new("queue_stats", event::QUEUES_TOPIC, now_ms, data));
                self.queues_reported = true;
            }
            Slot::Metrics(m) => {
                let data = serde_json::Value::Object(m.clone());
                let e = Event::new("metrics_update", event::METRICS_TOPIC, now_ms, data.clone());
                self.events.push(e);
                self.metrics = Some(data);
            }
            Slot::Extra(e) => self.events.push(e.clone()),
        }
    }
}

/// Each committed task's state while its events are replayed, and its change.
type States<'c> = HashMap<&'c str, (Option<Task>, &'c Change)>;

impl Batch<'_> {
    pub(super) fn publish_all(
        self,
        tasks: TaskOutcome,
        mut workers: Snapshots,
    ) -> Result<(), ApiError> {
        let mut out = Out {
            now: self.now,
            now_ms: self.now_ms,
            events: Vec::new(),
            queues_reported: false,
            metrics: None,
        };
        let mut states: States<'_> = tasks
            .changes
            .iter()
            .map(|(id, c)| (id.as_str(), (c.before.clone(), c)))
            .collect();
        for slot in &self.order {
            out.slot(slot, &self, &mut states, &mut workers);
        }
        let outcomes = outcomes(&tasks.changes);
        let breakers = records::breakers(self.kv, &outcomes, self.now, self.now_ms, &self.cfg)?;
        out.events.extend(breakers);
        let summaries = records::summaries(self.kv, out.queues_reported, out.metrics, self.now_ms)?;
        out.events.extend(summaries);
        self.kv.publish(&out.events)
    }
}
