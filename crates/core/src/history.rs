//! A task's history: every event Vigil recorded about it, in time order, with every field
//! as it was sent — Celery's own events, `task-progress`, and custom `task-*` events
//! (Celery's `send_event`). Stored apart from the task record (`history/{id}`) so task
//! lists stay small; the task detail view reads it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ingest::TaskEvent;

/// Events kept per task. Past it, the oldest `task-progress` goes first (a long task
/// reporting progress every second would otherwise push out its lifecycle), then the
/// oldest event; `dropped` counts them.
pub const MAX_HISTORY: usize = 200;
/// Children listed per task; a task fanning out more than this lists the first ones.
pub const MAX_CHILDREN: usize = 1000;

/// Fields of an event that are the entry's own (not repeated in `fields`).
const ENTRY_FIELDS: [&str; 3] = ["type", "uuid", "timestamp"];

/// A task's recorded events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The events, oldest first.
    pub events: Vec<HistoryEntry>,
    /// Events dropped to stay within [`MAX_HISTORY`].
    #[serde(default)]
    pub dropped: u64,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Event type, e.g. `task-started`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (the producer's timestamp, else when Vigil received it), seconds.
    pub timestamp: f64,
    /// When Vigil recorded it, seconds.
    pub recorded_at: f64,
    /// Its queue's breaker was open when it was recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub breaker_open: bool,
    /// Every other field the event carried, as sent.
    pub fields: Map<String, Value>,
}

impl HistoryEntry {
    /// The entry for `ev`, which happened at `ts` and arrived at `now`.
    pub fn of(ev: &TaskEvent, ts: f64, now: f64, breaker_open: bool) -> Self {
        let fields = ev
            .raw
            .iter()
            .filter(|(k, _)| !ENTRY_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self {
            kind: ev.kind.clone(),
            timestamp: ts,
            recorded_at: now,
            breaker_open,
            fields,
        }
    }

    fn same_event(&self, other: &Self) -> bool {
        self.kind == other.kind && self.timestamp == other.timestamp && self.fields == other.fields
    }
}

impl History {
    /// Adds `entry` in time order (after entries with the same time). An event already
    /// recorded — a producer sending a batch again — is not added twice: `false`.
    pub fn add(&mut self, entry: HistoryEntry) -> bool {
        if self.events.iter().any(|e| e.same_event(&entry)) {
            return false;
        }
        let at = self
            .events
            .partition_point(|e| e.timestamp <= entry.timestamp);
        self.events.insert(at, entry);
        if self.events.len() > MAX_HISTORY {
            let victim = self
                .events
                .iter()
                .position(|e| e.kind == "task-progress")
                .unwrap_or(0);
            self.events.remove(victim);
            self.dropped += 1;
        }
        true
    }
}

/// Adds `child` to a task's children; `false` when already there or the list is full.
pub fn add_child(children: &mut Vec<String>, child: &str) -> bool {
    if children.len() >= MAX_CHILDREN || children.iter().any(|c| c == child) {
        return false;
    }
    children.push(child.to_owned());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{parse_body, IngestEvent};

    fn entry(json: &str, now: f64) -> HistoryEntry {
        let IngestEvent::Task(ev) = parse_body(json.as_bytes()).unwrap().events.remove(0) else {
            panic!("not a task event")
        };
        HistoryEntry::of(&ev, ev.timestamp.unwrap_or(now), now, false)
    }

    #[test]
    fn keeps_events_in_time_order_with_every_field_once() {
        let mut h = History::default();
        assert!(h.add(entry(
            r#"{"type":"task-started","uuid":"a","timestamp":2,"pid":9}"#,
            5.0
        )));
        assert!(h.add(entry(
            r#"{"type":"task-sent","uuid":"a","timestamp":1,"queue":"q"}"#,
            5.0
        )));
        assert!(h.add(entry(
            r#"{"type":"task-checkpoint","uuid":"a","timestamp":3,"n":1}"#,
            5.0
        )));
        assert!(!h.add(entry(
            r#"{"type":"task-started","uuid":"a","timestamp":2,"pid":9}"#,
            6.0
        )));
        let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["task-sent", "task-started", "task-checkpoint"]);
        assert_eq!(h.events[1].fields.get("pid"), Some(&Value::from(9)));
        assert!(!h.events[1].fields.contains_key("uuid"));
        let v = serde_json::to_value(&h.events[2]).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["fields"]["n"].as_i64()),
            (Some("task-checkpoint"), Some(1))
        );
    }

    #[test]
    fn drops_progress_first_when_full() {
        let mut h = History::default();
        h.add(entry(
            r#"{"type":"task-received","uuid":"a","timestamp":0}"#,
            0.0,
        ));
        for i in 1..=MAX_HISTORY {
            h.add(entry(
                &format!(r#"{{"type":"task-progress","uuid":"a","timestamp":{i}}}"#),
                0.0,
            ));
        }
        assert_eq!((h.events.len(), h.dropped), (MAX_HISTORY, 1));
        assert_eq!(h.events[0].kind, "task-received", "the lifecycle stays");
        assert_eq!(h.events[1].timestamp, 2.0, "the oldest progress went");
    }

    #[test]
    fn children_are_listed_once_and_bounded() {
        let mut c = Vec::new();
        assert!(add_child(&mut c, "x"));
        assert!(!add_child(&mut c, "x"));
        for i in 0..MAX_CHILDREN {
            add_child(&mut c, &i.to_string());
        }
        assert_eq!(c.len(), MAX_CHILDREN);
    }
}
