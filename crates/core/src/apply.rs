//! How an event changes a task record.
//!
//! Events can arrive late or out of order (a `task-succeeded` before its
//! `task-received`), and concurrent producers deliver a task's events in any order.
//! The rule: **every field ends with the value of the newest event that carried it**
//! (newest by timestamp; on a tie, the later lifecycle stage), so the record is the
//! same as if the events had been applied one by one in timestamp order, whatever order
//! they arrive in. In particular the state is set by the newest event and an older one
//! never moves it back; an older event still fills in what no newer event said (name,
//! args, its own stage's timestamp). Each field's stamp is kept in the record
//! ([`crate::stamps`]). Producers that send no timestamp get the arrival time.

use crate::ingest::TaskEvent;
use crate::stamps::{At, Stamps};
use crate::task::{Task, TaskState};

/// Applies `ev` to the task (or a new one), at `now` seconds if the event has no timestamp.
pub fn apply(task: Option<Task>, ev: &TaskEvent, now: f64) -> Task {
    let mut t = task.unwrap_or_else(|| Task::new(ev.uuid.clone()));
    let ts = ev.timestamp.unwrap_or(now);
    let at = (ts, ev.state.rank());
    let newer = at >= (t.state_at, t.state.rank());
    merge_fields(&mut t, ev, at);
    stamp(&mut t, ev.state, ts);
    if newer {
        t.state = ev.state;
        t.state_at = ts;
    }
    t
}

/// The numbers of the task's fields in its stamps.
mod field {
    pub const NAME: u8 = 0;
    pub const WORKER: u8 = 1;
    pub const QUEUE: u8 = 2;
    pub const OWNER: u8 = 3;
    pub const ARGS: u8 = 4;
    pub const KWARGS: u8 = 5;
    pub const RUNTIME: u8 = 6;
    pub const RESULT: u8 = 7;
    pub const EXCEPTION: u8 = 8;
    pub const TRACEBACK: u8 = 9;
    pub const STEP: u8 = 10;
    pub const TOTAL_BATCHES: u8 = 11;
    pub const COMPLETED_BATCHES: u8 = 12;
    pub const ETA: u8 = 13;
    pub const QUEUE_POSITION: u8 = 14;
    pub const PROGRESS: u8 = 15;
}

/// Copies in each field the event carries, unless a newer event already set it. A
/// success carries progress 100.
fn merge_fields(t: &mut Task, ev: &TaskEvent, at: At) {
    let f = &ev.fields;
    let s = &mut t.stamps;
    newest(&mut t.name, &f.name, s, field::NAME, at);
    newest(&mut t.worker, &f.hostname, s, field::WORKER, at);
    newest(&mut t.queue, &f.queue, s, field::QUEUE, at);
    newest(&mut t.owner, &f.owner, s, field::OWNER, at);
    newest(&mut t.args, &f.args, s, field::ARGS, at);
    newest(&mut t.kwargs, &f.kwargs, s, field::KWARGS, at);
    newest(&mut t.runtime, &f.runtime, s, field::RUNTIME, at);
    newest(&mut t.result, &f.result, s, field::RESULT, at);
    newest(&mut t.exception, &f.exception, s, field::EXCEPTION, at);
    newest(&mut t.traceback, &f.traceback, s, field::TRACEBACK, at);
    newest(&mut t.step, &f.step, s, field::STEP, at);
    newest(
        &mut t.total_batches,
        &f.total_batches,
        s,
        field::TOTAL_BATCHES,
        at,
    );
    newest(
        &mut t.completed_batches,
        &f.completed_batches,
        s,
        field::COMPLETED_BATCHES,
        at,
    );
    newest(&mut t.eta_secs, &f.eta_secs, s, field::ETA, at);
    newest(
        &mut t.queue_position,
        &f.queue_position,
        s,
        field::QUEUE_POSITION,
        at,
    );
    if let Some(r) = f.retries {
        t.retries = t.retries.max(r);
    }
    let progress = match ev.state {
        TaskState::Success => Some(100.0),
        _ => f.progress,
    };
    if let Some(p) = progress.filter(|_| s.claim(field::PROGRESS, at)) {
        t.progress = p;
    }
    for (k, v) in &ev.extra {
        if s.claim_extra(k, at) {
            t.extra.insert(k.clone(), v.clone());
        }
    }
}

fn newest<T: Clone>(slot: &mut Option<T>, value: &Option<T>, stamps: &mut Stamps, bit: u8, at: At) {
    if let Some(v) = value {
        if stamps.claim(bit, at) {
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
    fn any_arrival_order_gives_the_timestamp_order_record() {
        let evs = [
            r#"{"type":"task-received","uuid":"a","name":"add","hostname":"w1","clock":1,"timestamp":1}"#,
            r#"{"type":"task-started","uuid":"a","hostname":"w1","clock":2,"timestamp":2}"#,
            r#"{"type":"task-progress","uuid":"a","progress":30,"step":"load","completedBatches":3,"timestamp":3}"#,
            r#"{"type":"task-retried","uuid":"a","exception":"Timeout","retries":1,"timestamp":4}"#,
            r#"{"type":"task-started","uuid":"a","hostname":"w2","clock":5,"timestamp":5}"#,
            r#"{"type":"task-progress","uuid":"a","progress":60,"step":"save","completedBatches":6,"timestamp":6}"#,
            r#"{"type":"task-failed","uuid":"a","exception":"ValueError","timestamp":7}"#,
        ];
        let in_order = run(&evs);
        assert_eq!(
            (in_order.progress, in_order.step.as_deref()),
            (60.0, Some("save"))
        );
        let mut order: Vec<usize> = (0..evs.len()).collect();
        for round in 0..200u64 {
            // A cheap deterministic permutation per round.
            order.sort_by_key(|i| (*i as u64 * 2654435761 + round * 40503) % 1009);
            let shuffled: Vec<&str> = order.iter().map(|i| evs[*i]).collect();
            assert_eq!(run(&shuffled).view(), in_order.view(), "order {order:?}");
        }
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
