//! How an event changes a task record.
//!
//! Events can arrive late or out of order (a `task-succeeded` before its
//! `task-received`). The rule: **the state is set by the event with the newest
//! timestamp** (on a tie, the later lifecycle stage wins). An older event never moves
//! the state back; it only fills in what the record does not know yet (name, args,
//! its own stage's timestamp). Producers that send no timestamp get the arrival time.

use crate::ingest::TaskEvent;
use crate::task::{Task, TaskState};

/// Applies `ev` to the task (or a new one), at `now` seconds if the event has no timestamp.
pub fn apply(task: Option<Task>, ev: &TaskEvent, now: f64) -> Task {
    let mut t = task.unwrap_or_else(|| Task::new(ev.uuid.clone()));
    let ts = ev.timestamp.unwrap_or(now);
    let newer = (ts, ev.state.rank()) >= (t.state_at, t.state.rank());
    merge_fields(&mut t, ev, newer);
    stamp(&mut t, ev.state, ts);
    if newer {
        t.state = ev.state;
        t.state_at = ts;
        if ev.state == TaskState::Success {
            t.progress = 100.0;
        }
    }
    t
}

/// Copies the event's fields in: all of them from a newer event, only the missing
/// ones from an older event.
fn merge_fields(t: &mut Task, ev: &TaskEvent, newer: bool) {
    let f = &ev.fields;
    fill(&mut t.name, &f.name, newer);
    fill(&mut t.worker, &f.hostname, newer);
    fill(&mut t.queue, &f.queue, newer);
    fill(&mut t.owner, &f.owner, newer);
    fill(&mut t.args, &f.args, newer);
    fill(&mut t.kwargs, &f.kwargs, newer);
    fill(&mut t.runtime, &f.runtime, newer);
    fill(&mut t.result, &f.result, newer);
    fill(&mut t.exception, &f.exception, newer);
    fill(&mut t.traceback, &f.traceback, newer);
    fill(&mut t.step, &f.step, newer);
    fill(&mut t.total_batches, &f.total_batches, newer);
    fill(&mut t.completed_batches, &f.completed_batches, newer);
    fill(&mut t.eta_secs, &f.eta_secs, newer);
    fill(&mut t.queue_position, &f.queue_position, newer);
    if let Some(r) = f.retries {
        t.retries = t.retries.max(r);
    }
    if let Some(p) = f.progress.filter(|_| newer) {
        t.progress = p;
    }
    for (k, v) in &ev.extra {
        if newer || !t.extra.contains_key(k) {
            t.extra.insert(k.clone(), v.clone());
        }
    }
}

fn fill<T: Clone>(slot: &mut Option<T>, value: &Option<T>, overwrite: bool) {
    if let Some(v) = value {
        if overwrite || slot.is_none() {
            *slot = Some(v.clone());
        }
    }
}

/// Records when the task reached the event's stage (first time it did).
fn stamp(t: &mut Task, state: TaskState, ts: f64) {
    let slot = match state {
        TaskState::Received => &mut t.received_at,
        TaskState::Started => &mut t.started_at,
        s if s.is_terminal() => &mut t.finished_at,
        _ => return,
    };
    *slot = Some(slot.map_or(ts, |old| old.min(ts)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse_body;

    fn ev(json: &str) -> TaskEvent {
        match parse_body(json.as_bytes()).unwrap().remove(0) {
            crate::ingest::IngestEvent::Task(t) => t,
            other => panic!("not a task event: {other:?}"),
        }
    }

    fn run(events: &[&str]) -> Task {
        events
            .iter()
            .fold(None, |t, e| Some(apply(t, &ev(e), 1000.0)))
            .unwrap()
    }

    #[test]
    fn follows_the_lifecycle() {
        let t = run(&[
            r#"{"type":"task-received","uuid":"a","name":"add","routing_key":"q1","timestamp":1}"#,
            r#"{"type":"task-started","uuid":"a","hostname":"w1","timestamp":2}"#,
            r#"{"type":"task-succeeded","uuid":"a","result":"3","runtime":0.5,"timestamp":3}"#,
        ]);
        assert_eq!(t.state, TaskState::Success);
        assert_eq!(
            (t.name.as_deref(), t.queue.as_deref(), t.worker.as_deref()),
            (Some("add"), Some("q1"), Some("w1"))
        );
        assert_eq!(
            (t.received_at, t.started_at, t.finished_at),
            (Some(1.0), Some(2.0), Some(3.0))
        );
        assert_eq!(t.progress, 100.0);
        assert_eq!(t.result, Some("3".into()));
    }

    #[test]
    fn a_late_received_fills_in_but_does_not_move_state_back() {
        let t = run(&[
            r#"{"type":"task-succeeded","uuid":"a","timestamp":3,"hostname":"w2"}"#,
            r#"{"type":"task-received","uuid":"a","name":"add","timestamp":1,"hostname":"w1"}"#,
        ]);
        assert_eq!(t.state, TaskState::Success);
        assert_eq!(t.name.as_deref(), Some("add"));
        assert_eq!(
            t.worker.as_deref(),
            Some("w2"),
            "older event must not overwrite"
        );
        assert_eq!(t.received_at, Some(1.0));
    }

    #[test]
    fn retry_then_start_again() {
        let t = run(&[
            r#"{"type":"task-started","uuid":"a","timestamp":1}"#,
            r#"{"type":"task-retried","uuid":"a","exception":"boom","timestamp":2}"#,
            r#"{"type":"task-started","uuid":"a","retries":1,"timestamp":3}"#,
        ]);
        assert_eq!(t.state, TaskState::Started);
        assert_eq!(t.retries, 1);
        assert_eq!(t.started_at, Some(1.0));
    }

    #[test]
    fn same_timestamp_later_stage_wins() {
        let t = run(&[
            r#"{"type":"task-succeeded","uuid":"a","timestamp":5}"#,
            r#"{"type":"task-started","uuid":"a","timestamp":5}"#,
        ]);
        assert_eq!(t.state, TaskState::Success);
    }

    #[test]
    fn events_without_timestamp_use_arrival_time() {
        let t = apply(
            None,
            &ev(r#"{"type":"task-progress","uuid":"a","progress":40,"step":"load"}"#),
            77.0,
        );
        assert_eq!(
            (t.state, t.state_at, t.progress),
            (TaskState::Progress, 77.0, 40.0)
        );
        assert_eq!(t.step.as_deref(), Some("load"));
    }
}
