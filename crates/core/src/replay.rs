//! A task record recomputed from its history: the events applied one by one in time
//! order ([`crate::apply`]), whatever order they arrived in. Concurrent producers on
//! several hosts deliver a task's events in any order; Celery's rule applied in arrival
//! order could then end differently (two `task-progress` events have the same
//! precedence: the later to *arrive* would win). Folding the history, which every
//! writer extends by compare-and-swap, ends with the record the events give in time
//! order — the same on every host.

use serde_json::{Map, Value};

use crate::apply::apply;
use crate::history::{History, HistoryEntry};
use crate::ingest::{parse_body, IngestEvent, TaskEvent};
use crate::task::Task;

/// How many events a history has taken in (kept or dropped): it only grows, so a record
/// computed from a longer history is the newer one.
pub fn version(h: &History) -> u64 {
    h.events.len() as u64 + h.dropped
}

/// The task its history gives, or `None` for an empty history. When events were
/// dropped from a long history, what the kept ones do not say is taken from `previous`.
pub fn task(id: &str, h: &History, previous: Option<&Task>) -> Option<Task> {
    let mut t: Option<Task> = None;
    for e in &h.events {
        if let Some(ev) = event(id, e) {
            t = Some(apply(t, &ev, e.timestamp));
        }
    }
    let mut t = t?;
    // The event that created the record: the first to arrive.
    let first = h
        .events
        .iter()
        .min_by(|a, b| a.recorded_at.total_cmp(&b.recorded_at));
    t.while_breaker_open = first.is_some_and(|e| e.breaker_open);
    if let (true, Some(p)) = (h.dropped > 0, previous) {
        fill_from(&mut t, p);
    }
    Some(t)
}

/// The event an entry recorded, parsed again as it was sent.
fn event(id: &str, e: &HistoryEntry) -> Option<TaskEvent> {
    let mut obj: Map<String, Value> = e.fields.clone();
    obj.insert("type".into(), Value::from(e.kind.clone()));
    obj.insert("uuid".into(), Value::from(id));
    obj.insert("timestamp".into(), Value::from(e.timestamp));
    let body = serde_json::to_vec(&Value::Object(obj)).ok()?;
    match parse_body(&body).ok()?.events.into_iter().next()? {
        IngestEvent::Task(t) => Some(t),
        _ => None,
    }
}

/// What the dropped events had said and the kept ones do not.
fn fill_from(t: &mut Task, p: &Task) {
    macro_rules! fill {
        ($($f:ident),*) => { $( if t.$f.is_none() { t.$f.clone_from(&p.$f); } )* };
    }
    fill!(
        name,
        queue,
        worker,
        client,
        owner,
        args,
        kwargs,
        exchange,
        routing_key
    );
    fill!(
        eta,
        expires,
        parent_id,
        root_id,
        sent_at,
        received_at,
        started_at
    );
    for (k, v) in &p.extra {
        t.extra.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskState;

    fn entry(json: &str, recorded: f64) -> HistoryEntry {
        let IngestEvent::Task(ev) = parse_body(json.as_bytes()).unwrap().events.remove(0) else {
            panic!("not a task event")
        };
        HistoryEntry::of(&ev, ev.timestamp.unwrap(), recorded, recorded == 0.0)
    }

    const EVENTS: [&str; 6] = [
        r#"{"type":"task-received","uuid":"a","name":"job","routing_key":"q","timestamp":1}"#,
        r#"{"type":"task-started","uuid":"a","hostname":"w1","timestamp":2}"#,
        r#"{"type":"task-progress","uuid":"a","progress":30,"step":"load","timestamp":3}"#,
        r#"{"type":"task-progress","uuid":"a","progress":60,"step":"save","timestamp":4}"#,
        r#"{"type":"task-failed","uuid":"a","exception":"E()","timestamp":5}"#,
        r#"{"type":"task-progress","uuid":"a","progress":90,"timestamp":6}"#,
    ];

    #[test]
    fn any_arrival_order_gives_the_time_order_record() {
        let in_order = EVENTS
            .iter()
            .fold(None, |t, e| {
                let IngestEvent::Task(ev) = parse_body(e.as_bytes()).unwrap().events.remove(0)
                else {
                    unreachable!()
                };
                Some(apply(t, &ev, 0.0))
            })
            .unwrap();
        assert_eq!(
            (in_order.state, in_order.progress),
            (TaskState::Failure, 60.0)
        );
        for order in [[5, 4, 3, 2, 1, 0], [3, 5, 0, 2, 4, 1], [2, 3, 1, 0, 5, 4]] {
            let mut h = History::default();
            for (n, i) in order.iter().enumerate() {
                h.add(entry(EVENTS[*i], 10.0 + n as f64));
            }
            let t = task("a", &h, None).unwrap();
            assert_eq!(
                (t.state, t.progress, t.step.as_deref(), t.worker.as_deref()),
                (
                    in_order.state,
                    in_order.progress,
                    in_order.step.as_deref(),
                    Some("w1")
                ),
                "order {order:?}"
            );
            assert_eq!(t.view(), in_order.view(), "order {order:?}");
        }
        assert_eq!(version(&History::default()), 0);
    }

    #[test]
    fn the_first_arrival_decides_the_breaker_mark() {
        let mut h = History::default();
        h.add(entry(EVENTS[1], 5.0));
        h.add(entry(EVENTS[0], 0.0));
        assert!(task("a", &h, None).unwrap().while_breaker_open);
    }
}
