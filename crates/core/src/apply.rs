//! How an event changes a task record — Celery's own rule (`celery.events.state.Task`).
//!
//! Events can arrive late or out of order (a `task-succeeded` before its
//! `task-received`). Each state has a precedence (Celery's `states.PRECEDENCE`: SUCCESS,
//! FAILURE, PROGRESS, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING — the first
//! wins). An event whose state comes after the task's in that list "happened before" it:
//! it does not move the state and only fills in what the record lacks (name, args, …).
//! An event to or from RETRY always moves it, since a retried task starts over. Times
//! and outcomes are recorded per attempt ([`crate::attempt`]); the task shows the latest.
//! Custom `task-*` events change no state; their fields are kept. Producers that send no
//! timestamp get the arrival time.

use serde_json::{Map, Value};

use crate::attempt;
use crate::ingest::TaskEvent;
use crate::task::{Task, TaskState};

/// Fields every Celery event carries that describe the message, not the task; they are
/// kept in the task's history, not copied onto the record.
pub const TRANSIENT_FIELDS: [&str; 4] = ["clock", "local_received", "utcoffset", "pid"];

/// Applies `ev` to the task (or a new one), at `now` seconds if the event has no timestamp.
pub fn apply(task: Option<Task>, ev: &TaskEvent, now: f64) -> Task {
    let mut t = task.unwrap_or_else(|| Task::new(ev.uuid.clone()));
    let ts = ev.timestamp.unwrap_or(now);
    t.last_event = Some(ev.kind.clone());
    attempt::record(&mut t, ev, ts);
    let Some(state) = ev.state else {
        merge_extra(&mut t.extra, &ev.extra, true);
        if t.state_at == f64::MIN {
            t.state_at = ts;
        }
        return t;
    };
    let happened_before = state != TaskState::Retry
        && t.state != TaskState::Retry
        && state.precedence() > t.state.precedence();
    merge_fields(&mut t, ev, !happened_before);
    if !happened_before {
        t.state = state;
        t.state_at = ts;
        if state.is_terminal() {
            t.finished_at = Some(ts);
        }
        if state == TaskState::Success {
            t.progress = 100.0;
        }
    }
    t
}

/// Copies the event's fields in: all of them from an event that moves the state, only
/// the missing ones from one that happened before.
fn merge_fields(t: &mut Task, ev: &TaskEvent, overwrite: bool) {
    let f = &ev.fields;
    if ev.kind == "task-sent" {
        fill(&mut t.client, &f.hostname, overwrite);
    } else {
        fill(&mut t.worker, &f.hostname, overwrite);
    }
    fill(&mut t.name, &f.name, overwrite);
    fill(&mut t.queue, &f.queue, overwrite);
    fill(&mut t.exchange, &f.exchange, overwrite);
    fill(&mut t.routing_key, &f.routing_key, overwrite);
    fill(&mut t.owner, &f.owner, overwrite);
    fill(&mut t.args, &f.args, overwrite);
    fill(&mut t.kwargs, &f.kwargs, overwrite);
    fill(&mut t.eta, &f.eta, overwrite);
    fill(&mut t.expires, &f.expires, overwrite);
    fill(&mut t.parent_id, &f.parent_id, overwrite);
    fill(&mut t.root_id, &f.root_id, overwrite);
    fill(&mut t.runtime, &f.runtime, overwrite);
    fill(&mut t.result, &f.result, overwrite);
    fill(&mut t.exception, &f.exception, overwrite);
    fill(&mut t.traceback, &f.traceback, overwrite);
    fill(&mut t.step, &f.step, overwrite);
    fill(&mut t.total_batches, &f.total_batches, overwrite);
    fill(&mut t.completed_batches, &f.completed_batches, overwrite);
    fill(&mut t.eta_secs, &f.eta_secs, overwrite);
    fill(&mut t.queue_position, &f.queue_position, overwrite);
    if let Some(r) = f.retries {
        t.retries = t.retries.max(r);
    }
    if let Some(p) = f.progress.filter(|_| overwrite) {
        t.progress = p;
    }
    merge_extra(&mut t.extra, &ev.extra, overwrite);
}

fn merge_extra(into: &mut Map<String, Value>, extra: &Map<String, Value>, overwrite: bool) {
    for (k, v) in extra {
        if TRANSIENT_FIELDS.contains(&k.as_str()) {
            continue;
        }
        if overwrite || !into.contains_key(k) {
            into.insert(k.clone(), v.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{parse_body, IngestEvent};

    fn ev(json: &str) -> TaskEvent {
        match parse_body(json.as_bytes()).unwrap().events.remove(0) {
            IngestEvent::Task(t) => t,
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
    fn follows_the_lifecycle_from_task_sent() {
        let t = run(&[
            r#"{"type":"task-sent","uuid":"a","name":"add","args":"(1, 2)","queue":"q1","hostname":"client@h","eta":null,"expires":"2030-01-01T00:00:00","parent_id":"p","root_id":"r","timestamp":0.5}"#,
            r#"{"type":"task-received","uuid":"a","name":"add","hostname":"w1","timestamp":1,"clock":4}"#,
            r#"{"type":"task-started","uuid":"a","hostname":"w1","timestamp":2}"#,
            r#"{"type":"task-succeeded","uuid":"a","result":"3","runtime":0.5,"timestamp":3}"#,
        ]);
        assert_eq!(t.state, TaskState::Success);
        assert_eq!(
            (
                t.name.as_deref(),
                t.queue.as_deref(),
                t.worker.as_deref(),
                t.client.as_deref()
            ),
            (Some("add"), Some("q1"), Some("w1"), Some("client@h"))
        );
        assert_eq!(
            (t.parent_id.as_deref(), t.root_id.as_deref()),
            (Some("p"), Some("r"))
        );
        assert_eq!(t.expires, Some(Value::from("2030-01-01T00:00:00")));
        assert_eq!(
            (t.sent_at, t.received_at, t.started_at, t.finished_at),
            (Some(0.5), Some(1.0), Some(2.0), Some(3.0))
        );
        assert_eq!((t.progress, t.result.clone()), (100.0, Some("3".into())));
        assert_eq!(t.last_event.as_deref(), Some("task-succeeded"));
        assert!(
            !t.extra.contains_key("clock"),
            "message fields stay in the history"
        );
    }

    #[test]
    fn task_sent_alone_is_pending_with_its_queue() {
        let t = run(&[
            r#"{"type":"task-sent","uuid":"a","name":"n","routing_key":"rk","timestamp":1}"#,
        ]);
        assert_eq!(
            (t.state, t.queue.as_deref(), t.worker.as_deref()),
            (TaskState::Pending, Some("rk"), None)
        );
        let revoked = run(&[
            r#"{"type":"task-sent","uuid":"a","name":"n","queue":"q","timestamp":1}"#,
            r#"{"type":"task-revoked","uuid":"a","hostname":"w","terminated":false,"expired":false,"timestamp":2}"#,
        ]);
        assert_eq!(
            (revoked.state, revoked.name.as_deref()),
            (TaskState::Revoked, Some("n"))
        );
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
            "an event that happened before fills in only"
        );
        assert_eq!(t.received_at, Some(1.0));
    }

    #[test]
    fn precedence_not_arrival_time_decides_like_celery() {
        let t = run(&[
            r#"{"type":"task-succeeded","uuid":"a","timestamp":5}"#,
            r#"{"type":"task-revoked","uuid":"a","timestamp":9}"#,
        ]);
        assert_eq!(
            t.state,
            TaskState::Success,
            "SUCCESS outranks a later REVOKED"
        );
        let t = run(&[
            r#"{"type":"task-revoked","uuid":"a","timestamp":5}"#,
            r#"{"type":"task-started","uuid":"a","timestamp":4}"#,
        ]);
        assert_eq!(t.state, TaskState::Revoked);
        let t = run(&[
            r#"{"type":"task-started","uuid":"a","timestamp":1}"#,
            r#"{"type":"task-progress","uuid":"a","progress":40,"timestamp":2}"#,
            r#"{"type":"task-failed","uuid":"a","exception":"E()","timestamp":3}"#,
            r#"{"type":"task-progress","uuid":"a","progress":60,"timestamp":4}"#,
        ]);
        assert_eq!((t.state, t.progress), (TaskState::Failure, 40.0));
    }

    #[test]
    fn each_retry_is_an_attempt_and_the_task_shows_the_latest() {
        let t = run(&[
            r#"{"type":"task-sent","uuid":"a","name":"flaky","queue":"q","retries":0,"timestamp":1}"#,
            r#"{"type":"task-received","uuid":"a","retries":0,"hostname":"w1","timestamp":2}"#,
            r#"{"type":"task-started","uuid":"a","hostname":"w1","timestamp":3}"#,
            r#"{"type":"task-sent","uuid":"a","name":"flaky","queue":"q","retries":1,"hostname":"w1","timestamp":4}"#,
            r#"{"type":"task-retried","uuid":"a","exception":"Boom()","hostname":"w1","timestamp":4.5}"#,
            r#"{"type":"task-received","uuid":"a","retries":1,"hostname":"w2","timestamp":6}"#,
            r#"{"type":"task-started","uuid":"a","hostname":"w2","timestamp":7}"#,
        ]);
        assert_eq!(
            (t.state, t.retries, t.worker.as_deref()),
            (TaskState::Started, 1, Some("w2"))
        );
        assert_eq!(
            (t.sent_at, t.received_at, t.started_at),
            (Some(4.0), Some(6.0), Some(7.0))
        );
        assert_eq!(t.attempts.len(), 2);
        let (a0, a1) = (&t.attempts[0], &t.attempts[1]);
        assert_eq!(
            (a0.state, a0.started_at, a0.finished_at),
            (TaskState::Retry, Some(3.0), Some(4.5))
        );
        assert_eq!(a0.exception.as_deref(), Some("Boom()"));
        assert_eq!(
            (a1.retries, a1.state, a1.worker.as_deref()),
            (1, TaskState::Started, Some("w2"))
        );
        let done = apply(
            Some(t),
            &ev(r#"{"type":"task-succeeded","uuid":"a","runtime":0.2,"timestamp":8}"#),
            0.0,
        );
        assert_eq!(
            (done.state, done.attempts[1].runtime),
            (TaskState::Success, Some(0.2))
        );
    }

    #[test]
    fn custom_events_keep_their_fields_and_the_state() {
        let t = run(&[
            r#"{"type":"task-started","uuid":"a","timestamp":1}"#,
            r#"{"type":"task-checkpoint","uuid":"a","stage":"load","timestamp":2}"#,
        ]);
        assert_eq!((t.state, t.state_at), (TaskState::Started, 1.0));
        assert_eq!(t.extra.get("stage"), Some(&Value::from("load")));
        assert_eq!(t.last_event.as_deref(), Some("task-checkpoint"));
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
