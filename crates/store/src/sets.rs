//! The sets a task belongs to — which indexes list it, at which sort key, and which
//! counters count it — computed from the record alone. Writers apply the difference
//! between a task's sets before and after a change; readers check an index entry
//! against the record's sets. Set names are made of [`keys::escape`]d parts.
//!
//! Indexes sorted by `state_at` (the default order), each also counted:
//! `all`, `s/{STATE}`, `q/{queue}`, `q/{queue}/{STATE}`, `w/{worker}`, `o/{owner}`,
//! `o/{owner}/{STATE}`, `n/{name}`, `j` (jobs), `j/{owner}`.
//! Counted only: `w/{worker}/{STATE}`, `done` (finished tasks).
//! Other orders: `by/{field}` for `received_at`, `started_at`, `finished_at` and
//! `runtime`, holding the tasks that have the field (a task gets it once, so these
//! indexes see one insert per task, mostly at the top). Sorting by `name` walks the
//! `n/{name}` indexes in name order. Retention order: `done` (finished tasks by when
//! Vigil recorded them finishing).

use std::collections::BTreeMap;

use vigil_core::keys::{self, escape};
use vigil_core::task::{Task, TaskState};

use crate::pos::Key;

/// Every task, by `state_at`.
pub const ALL: &str = "all";
/// Jobs, by `state_at`.
pub const JOBS: &str = "j";
/// Finished tasks by when Vigil recorded them finishing (retention's order; counted).
pub const DONE: &str = "done";
/// Expired tasks' markers by when they expired.
pub const GONE: &str = "gone";
/// Fields a listing can sort by; `state_at` is the default.
pub const SORT_FIELDS: [&str; 6] = [
    "state_at",
    "received_at",
    "started_at",
    "finished_at",
    "runtime",
    "name",
];

/// Tasks in a state.
pub fn state(s: TaskState) -> String {
    format!("s/{}", s.as_str())
}
/// Tasks of a queue.
pub fn queue(q: &str) -> String {
    format!("q/{}", escape(q))
}
/// Tasks of a queue in a state.
pub fn queue_state(q: &str, s: TaskState) -> String {
    format!("q/{}/{}", escape(q), s.as_str())
}
/// Tasks run by a worker.
pub fn worker(w: &str) -> String {
    format!("w/{}", escape(w))
}
/// Tasks run by a worker, in a state (counted, not indexed).
pub fn worker_state(w: &str, s: TaskState) -> String {
    format!("w/{}/{}", escape(w), s.as_str())
}
/// Tasks of an owner.
pub fn owner(o: &str) -> String {
    format!("o/{}", escape(o))
}
/// Tasks of an owner in a state.
pub fn owner_state(o: &str, s: TaskState) -> String {
    format!("o/{}/{}", escape(o), s.as_str())
}
/// Tasks with a name.
pub fn name(n: &str) -> String {
    format!("n/{}", escape(n))
}
/// Jobs of an owner.
pub fn owner_jobs(o: &str) -> String {
    format!("j/{}", escape(o))
}
/// The tasks that have `field` (one of [`BY_FIELDS`]), sorted by it.
pub fn sorted_by(field: &str) -> String {
    format!("by/{field}")
}

/// Fields with their own `by/{field}` index.
pub const BY_FIELDS: [&str; 4] = ["received_at", "started_at", "finished_at", "runtime"];

/// Whether a task is a job: submitted through the jobs API, or reporting batches.
pub fn is_job(t: &Task) -> bool {
    t.total_batches.is_some() || t.extra.get("job") == Some(&serde_json::Value::Bool(true))
}

/// The `state_at`-sorted sets `t` belongs to (each is indexed and counted).
pub fn indexed(t: &Task) -> Vec<String> {
    let s = t.state;
    let mut out = vec![ALL.to_owned(), state(s)];
    if let Some(q) = &t.queue {
        out.extend([queue(q), queue_state(q, s)]);
    }
    if let Some(w) = &t.worker {
        out.push(worker(w));
    }
    if let Some(o) = &t.owner {
        out.extend([owner(o), owner_state(o, s)]);
    }
    if let Some(n) = &t.name {
        out.push(name(n));
    }
    if is_job(t) {
        out.push(JOBS.to_owned());
        out.extend(t.owner.as_deref().map(owner_jobs));
    }
    out
}

/// The value of a numeric sort field, if the task has it.
pub fn field(t: &Task, field: &str) -> Option<f64> {
    match field {
        "received_at" => t.received_at,
        "started_at" => t.started_at,
        "finished_at" => t.finished_at,
        "runtime" => t.runtime,
        "state_at" => Some(t.state_at),
        _ => None,
    }
}

/// Every index entry of a record: `(index, sort key)`.
pub fn entries(t: &Task, done_at: Option<f64>) -> BTreeMap<String, Key> {
    let mut out: BTreeMap<String, Key> = indexed(t)
        .into_iter()
        .map(|set| (set, Key::Num(t.state_at)))
        .collect();
    for f in BY_FIELDS {
        if let Some(v) = field(t, f) {
            out.insert(sorted_by(f), Key::Num(v));
        }
    }
    if let Some(d) = done_at {
        out.insert(DONE.to_owned(), Key::Num(d));
    }
    out
}

/// What a record adds to each counter: `count/{set}` for its sets, and its queue's wait
/// aggregates (`agg/wait_ms/{queue}`, `agg/waits/{queue}`).
pub fn contributions(t: &Task, done_at: Option<f64>) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = indexed(t)
        .into_iter()
        .map(|set| (keys::count(&set), 1))
        .collect();
    if let Some(w) = &t.worker {
        out.insert(keys::count(&worker_state(w, t.state)), 1);
    }
    if done_at.is_some() {
        out.insert(keys::count(DONE), 1);
    }
    if let (Some(q), Some(wait)) = (&t.queue, wait_secs(t)) {
        out.insert(
            keys::aggregate("wait_ms", q),
            (wait * 1000.0).round() as i64,
        );
        out.insert(keys::aggregate("waits", q), 1);
    }
    out
}

/// Seconds the task waited in its queue, once both ends are known.
pub fn wait_secs(t: &Task) -> Option<f64> {
    Some((t.started_at? - t.received_at?).max(0.0))
}

/// `after − before` per counter, without zeros.
pub fn delta(
    before: Option<(&Task, Option<f64>)>,
    after: Option<(&Task, Option<f64>)>,
) -> BTreeMap<String, i64> {
    let mut out = after.map_or_else(BTreeMap::new, |(t, d)| contributions(t, d));
    for (k, v) in before.map_or_else(BTreeMap::new, |(t, d)| contributions(t, d)) {
        *out.entry(k).or_default() -= v;
    }
    out.retain(|_, v| *v != 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: TaskState, at: f64) -> Task {
        let mut t = Task::new("t1");
        t.state = state;
        t.state_at = at;
        t.queue = Some("q/1".into());
        t.owner = Some("alice".into());
        t.name = Some("add".into());
        t
    }

    #[test]
    fn a_task_is_in_the_sets_its_fields_name() {
        let t = task(TaskState::Received, 5.0);
        let e = entries(&t, None);
        assert_eq!(e["all"], Key::Num(5.0));
        assert_eq!(e["q/q%2F1/RECEIVED"], Key::Num(5.0));
        assert_eq!(e["o/alice/RECEIVED"], Key::Num(5.0));
        assert_eq!(e["n/add"], Key::Num(5.0));
        assert!(!e.contains_key("by/runtime"), "no runtime yet");
        assert!(!e.contains_key(JOBS) && !e.contains_key(DONE));
        assert_eq!(e.len(), 7);
    }

    #[test]
    fn a_transition_moves_counts_between_states() {
        let before = task(TaskState::Received, 5.0);
        let mut after = task(TaskState::Success, 9.0);
        after.received_at = Some(5.0);
        after.started_at = Some(7.5);
        let d = delta(Some((&before, None)), Some((&after, Some(100.0))));
        assert_eq!(d.get("count/s/RECEIVED"), Some(&-1));
        assert_eq!(d.get("count/s/SUCCESS"), Some(&1));
        assert_eq!(d.get("count/q/q%2F1/SUCCESS"), Some(&1));
        assert_eq!(d.get("count/done"), Some(&1));
        assert_eq!(d.get("agg/wait_ms/q%2F1"), Some(&2500));
        assert!(!d.contains_key("count/all"), "still one task");
        assert_eq!(
            delta(Some((&after, None)), Some((&after, None))),
            BTreeMap::new()
        );
    }
}
