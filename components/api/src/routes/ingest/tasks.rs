//! Task events in a batch: each task's history is extended by compare-and-swap (an event
//! recorded twice is kept once), then its record is recomputed from the history
//! (`vigil_core::replay`: the events in time order, whatever their arrival order) and
//! written by `vigil-store` with its index entries and counters. A writer holding an
//! older history than the record was computed from leaves the record alone. Then the
//! parent's list of children, and what the new events count for their worker.

use std::collections::{BTreeMap, HashMap};

use vigil_core::breaker::Breaker;
use vigil_core::error::ApiError;
use vigil_core::history::{self, History, HistoryEntry};
use vigil_core::ingest::TaskEvent;
use vigil_core::{apply, keys, replay};
use vigil_store::record::Stored;
use vigil_store::tasks::{self, Change, Next};

use super::Batch;
use crate::routes::records::update_json;
use crate::store::{api_error, Kv};

/// What a batch did to its tasks.
pub(super) struct TaskOutcome {
    /// Each committed task by id (expired tasks are left out: their events are dropped).
    pub changes: HashMap<String, Change>,
    /// Task events new to their history, by the worker that sent them: `(type, time)`.
    pub worker_counts: BTreeMap<String, Vec<(String, f64)>>,
}

impl TaskOutcome {
    /// Tasks the batch finished.
    pub fn finished(&self) -> usize {
        self.changes
            .values()
            .filter(|c| {
                c.after.state.is_terminal()
                    && c.before.as_ref().is_none_or(|b| !b.state.is_terminal())
            })
            .count()
    }
}

/// A task event new to its history, for its worker's counts: `(worker, type, time)`.
type Counted = (String, String, f64);

/// A task's history after this batch added to it.
struct Extended {
    history: History,
    /// The history's version before this batch.
    from: u64,
    /// The events this batch added, in time order, if they all went after every event
    /// already there (and none was dropped): then the record of version `from` with them
    /// applied is the record of the whole history, without replaying it.
    appended: Option<Vec<TaskEvent>>,
    breaker_open: bool,
}

/// The next version of a task from its history, unless the record already reflects as
/// long a history: the record of the previous version with the appended events applied
/// when it can, else the history replayed.
fn from_history(id: &str, x: &Extended, cur: Option<&Stored>, now: f64) -> Next {
    let v = replay::version(&x.history);
    let (cur_v, cur_task) = (cur.map_or(0, |s| s.hist), cur.and_then(|s| s.task.as_ref()));
    if cur_v >= v {
        return None;
    }
    if let (true, Some(evs)) = (cur_v == x.from, &x.appended) {
        let start = cur_task.cloned();
        let is_new = start.is_none();
        let mut t = evs.iter().fold(start, |t, e| {
            Some(apply::apply(t, e, e.timestamp.unwrap_or(now)))
        })?;
        t.while_breaker_open |= is_new && x.breaker_open;
        return Some((t, v));
    }
    replay::task(id, &x.history, cur_task).map(|t| (t, v))
}

impl Batch<'_> {
    pub(super) fn commit_tasks(&self) -> Result<TaskOutcome, ApiError> {
        let mut plan =
            tasks::prepare(self.kv, &self.task_ids, &mut |_, _| None).map_err(api_error)?;
        let open = self.open_breakers(&plan)?;
        let mut histories = HashMap::new();
        let mut worker_counts: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        for p in &mut plan.tasks {
            let queue = self.queue_of(&p.id, p.before.as_ref());
            let breaker_open = queue.is_some_and(|q| open.get(q).copied().unwrap_or(false));
            let (x, new) = self.extend_history(&p.id, breaker_open)?;
            for (host, kind, ts) in new {
                worker_counts.entry(host).or_default().push((kind, ts));
            }
            p.after = from_history(&p.id, &x, p.before.as_ref(), self.now);
            histories.insert(p.id.clone(), x);
        }
        let now = self.now;
        let mut again =
            |id: &str, cur: Option<&Stored>| from_history(id, histories.get(id)?, cur, now);
        let committed = tasks::commit(self.kv, plan, self.now, &mut again).map_err(api_error)?;
        let changes: HashMap<String, Change> = committed
            .into_iter()
            .map(|c| (c.after.id.clone(), c))
            .collect();
        self.add_children(&changes)?;
        Ok(TaskOutcome {
            changes,
            worker_counts,
        })
    }

    /// The queue a task's events name, else the one its record has.
    fn queue_of<'s>(&'s self, id: &str, before: Option<&'s Stored>) -> Option<&'s str> {
        let evs = self.task_events.get(id)?;
        evs.iter()
            .find_map(|e| e.fields.queue.as_deref())
            .or_else(|| before?.task.as_ref()?.queue.as_deref())
    }

    /// Whether each queue the batch's tasks are on has its breaker open now.
    fn open_breakers(
        &self,
        plan: &tasks::Plan<<Kv as vigil_store::kv::Kv>::Cas>,
    ) -> Result<HashMap<String, bool>, ApiError> {
        let mut out = HashMap::new();
        for p in &plan.tasks {
            if let Some(q) = self.queue_of(&p.id, p.before.as_ref()) {
                if !out.contains_key(q) {
                    let b: Option<Breaker> = self.kv.get(&keys::breaker(q))?;
                    let open = b.is_some_and(|b| !b.admits(self.now, &self.cfg));
                    out.insert(q.to_owned(), open);
                }
            }
        }
        Ok(out)
    }

    /// Adds the batch's events to the task's history; the history, and the new events'
    /// `(worker, type, time)` (task-sent comes from the client, not a worker).
    fn extend_history(
        &self,
        id: &str,
        breaker_open: bool,
    ) -> Result<(Extended, Vec<Counted>), ApiError> {
        let evs: &[TaskEvent] = self
            .task_events
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut sorted: Vec<&TaskEvent> = evs.iter().collect();
        sorted.sort_by(|a, b| self.ts(a).total_cmp(&self.ts(b)));
        let mut out = None;
        update_json(self.kv, &keys::history(id), |cur: Option<History>| {
            let mut h = cur.unwrap_or_default();
            let from = replay::version(&h);
            let (mut appended, mut in_order, mut counts) = (Vec::new(), true, Vec::new());
            for ev in &sorted {
                let ts = self.ts(ev);
                let dropped = h.dropped;
                if !h.add(HistoryEntry::of(ev, ts, self.now, breaker_open)) {
                    continue;
                }
                let last = h
                    .events
                    .last()
                    .is_some_and(|e| e.timestamp == ts && e.kind == ev.kind);
                in_order &= last && h.dropped == dropped;
                appended.push((*ev).clone());
                if let (false, Some(host)) = (ev.kind == "task-sent", &ev.fields.hostname) {
                    counts.push((host.clone(), ev.kind.clone(), ts));
                }
            }
            let write = !appended.is_empty();
            let x = Extended {
                history: h.clone(),
                from,
                appended: in_order.then_some(appended),
                breaker_open,
            };
            out = Some((x, counts));
            write.then_some((h, ()))
        })?;
        out.ok_or_else(|| ApiError::internal("the history update ran no step"))
    }

    fn ts(&self, ev: &TaskEvent) -> f64 {
        ev.timestamp.unwrap_or(self.now)
    }

    /// Lists each task that just got a parent among the parent's children.
    fn add_children(&self, changes: &HashMap<String, Change>) -> Result<(), ApiError> {
        for c in changes.values() {
            let had = c.before.as_ref().is_some_and(|b| b.parent_id.is_some());
            let (false, Some(parent)) = (had, c.after.parent_id.as_deref()) else {
                continue;
            };
            update_json(
                self.kv,
                &keys::children(parent),
                |cur: Option<Vec<String>>| {
                    let mut list = cur.unwrap_or_default();
                    history::add_child(&mut list, &c.after.id).then_some((list, ()))
                },
            )?;
        }
        Ok(())
    }
}
