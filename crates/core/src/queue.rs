//! Queues: what producers report with `queue-stats`, and what Vigil derives from the
//! task records it holds (waiting, active, average wait, throughput).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::task::{Task, TaskState};

/// Window over which throughput is measured, seconds.
pub const THROUGHPUT_WINDOW: f64 = 60.0;

/// What a producer last reported about a queue (`queue-stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedQueue {
    /// Queue name.
    pub name: String,
    /// Messages waiting in the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// Consumers attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
    /// When reported, seconds since the epoch.
    pub reported_at: f64,
    /// Anything else reported, kept as sent.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A queue as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueSummary {
    /// Queue name.
    pub name: String,
    /// Waiting: the broker's depth when reported, otherwise tasks received but not started.
    pub depth: u64,
    /// Tasks running now.
    pub active: u64,
    /// Tasks finished successfully / with failure, of those Vigil holds.
    pub succeeded: u64,
    /// See `succeeded`.
    pub failed: u64,
    /// Mean seconds from received to started.
    pub avg_wait: Option<f64>,
    /// Tasks finished per minute over the last minute.
    pub throughput: f64,
    /// Consumers, when reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
}

/// One summary per queue named by a task or a report, by name.
pub fn summarize(
    tasks: &[Task],
    reported: &[ReportedQueue],
    now: f64,
) -> BTreeMap<String, QueueSummary> {
    let mut out: BTreeMap<String, QueueSummary> = BTreeMap::new();
    let mut waits: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for t in tasks {
        let Some(q) = &t.queue else { continue };
        let s = out.entry(q.clone()).or_insert_with(|| named(q));
        match t.state {
            TaskState::Pending | TaskState::Received | TaskState::Retry => s.depth += 1,
            TaskState::Started | TaskState::Progress => s.active += 1,
            TaskState::Success => s.succeeded += 1,
            TaskState::Failure => s.failed += 1,
            TaskState::Revoked | TaskState::Rejected => {}
        }
        if t.finished_at.is_some_and(|f| now - f <= THROUGHPUT_WINDOW) {
            s.throughput += 60.0 / THROUGHPUT_WINDOW;
        }
        if let (Some(r), Some(st)) = (t.received_at, t.started_at) {
            let w = waits.entry(q.clone()).or_default();
            w.0 += (st - r).max(0.0);
            w.1 += 1;
        }
    }
    for (q, (sum, n)) in waits {
        if let Some(s) = out.get_mut(&q) {
            s.avg_wait = Some(sum / f64::from(n));
        }
    }
    for r in reported {
        let s = out.entry(r.name.clone()).or_insert_with(|| named(&r.name));
        if let Some(d) = r.depth {
            s.depth = d;
        }
        s.consumers = r.consumers;
    }
    out
}

fn named(q: &str) -> QueueSummary {
    QueueSummary {
        name: q.to_owned(),
        ..QueueSummary::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(
        id: &str,
        q: &str,
        state: TaskState,
        received: f64,
        started: Option<f64>,
        finished: Option<f64>,
    ) -> Task {
        let mut t = Task::new(id);
        t.queue = Some(q.into());
        t.state = state;
        t.received_at = Some(received);
        t.started_at = started;
        t.finished_at = finished;
        t
    }

    #[test]
    fn derives_counts_wait_and_throughput() {
        let tasks = [
            task("a", "q1", TaskState::Received, 0.0, None, None),
            task("b", "q1", TaskState::Started, 0.0, Some(4.0), None),
            task("c", "q1", TaskState::Success, 0.0, Some(2.0), Some(90.0)),
            task("d", "q1", TaskState::Failure, 0.0, None, Some(10.0)),
            task("e", "q2", TaskState::Received, 0.0, None, None),
        ];
        let s = summarize(&tasks, &[], 100.0);
        let q1 = &s["q1"];
        assert_eq!((q1.depth, q1.active, q1.succeeded, q1.failed), (1, 1, 1, 1));
        assert_eq!(q1.avg_wait, Some(3.0));
        assert_eq!(q1.throughput, 1.0, "only c finished within the last minute");
        assert_eq!(s["q2"].depth, 1);
    }

    #[test]
    fn reported_depth_wins() {
        let tasks = [task("a", "q1", TaskState::Received, 0.0, None, None)];
        let reported = [
            ReportedQueue {
                name: "q1".into(),
                depth: Some(40),
                consumers: Some(2),
                reported_at: 1.0,
                extra: Map::new(),
            },
            ReportedQueue {
                name: "idle".into(),
                depth: Some(0),
                consumers: None,
                reported_at: 1.0,
                extra: Map::new(),
            },
        ];
        let s = summarize(&tasks, &reported, 2.0);
        assert_eq!((s["q1"].depth, s["q1"].consumers), (40, Some(2)));
        assert!(s.contains_key("idle"));
    }
}
