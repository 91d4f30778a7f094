//! The published event: what every push transport and the event feed carry.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Event name of a changed task record.
pub const TASK_UPDATE: &str = "task_update";
/// Room every task event goes to (seed 000's `celery:tasks`).
pub const TASKS_TOPIC: &str = "celery:tasks";
/// Room of batch-job progress (seed 000's `celery:batch_jobs`).
pub const BATCH_JOBS_TOPIC: &str = "celery:batch_jobs";
pub use vigil_rules::{BREAKERS_TOPIC, PUBLIC_TOPICS, QUEUES_TOPIC, WORKERS_TOPIC};
/// Topic of seed 003's job notifications (`job-queued`, …, `job-failed`).
pub const JOBS_TOPIC: &str = "jobs";
/// Topic of system metrics; carries no owner, so only admins receive it.
pub const METRICS_TOPIC: &str = "admin:metrics";
/// Topic of commands for producers (revoke, job submissions), which workers long-poll.
pub const COMMANDS_TOPIC: &str = "commands";

/// One change, as published to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Deployment-wide sequence number; 0 until the host's relay assigns it.
    #[serde(default)]
    pub seq: u64,
    /// Event name as clients see it, e.g. `task_update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Room/topic it belongs to, e.g. `celery:tasks`.
    pub topic: String,
    /// When it was published, in milliseconds since the epoch.
    pub ts: u64,
    /// Conflation key: a later event with the same key supersedes this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Owner of the subject, for per-user filtering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Queue of the subject, for per-queue filtering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// State of the subject, for per-state filtering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The payload: for `task_update`, the whole task record.
    pub data: Value,
}

impl Event {
    /// An event about no particular task: no key, owner, queue or state.
    pub fn new(kind: &str, topic: &str, ts_ms: u64, data: Value) -> Self {
        Self {
            seq: 0,
            kind: kind.to_owned(),
            topic: topic.to_owned(),
            ts: ts_ms,
            key: None,
            owner: None,
            queue: None,
            state: None,
            data,
        }
    }

    /// Seed 000's `batch_progress` for a task that reports batches.
    pub fn batch_progress(task: &crate::task::Task, ts_ms: u64) -> Self {
        let data = serde_json::json!({
            "jobId": task.id,
            "totalBatches": task.total_batches,
            "completedBatches": task.completed_batches,
            "progress": task.progress,
            "estimatedTimeRemaining": task.eta_secs,
            "queuePosition": task.queue_position,
            "state": task.state,
        });
        Self {
            topic: BATCH_JOBS_TOPIC.to_owned(),
            kind: "batch_progress".to_owned(),
            data,
            ..Self::task_update(task, ts_ms)
        }
    }

    /// The event published when a task record changes.
    pub fn task_update(task: &crate::task::Task, ts_ms: u64) -> Self {
        Self::about_task(
            task,
            TASK_UPDATE.to_owned(),
            TASKS_TOPIC,
            ts_ms,
            task.view(),
        )
    }

    /// An event about `task`, keyed and filtered by it (id, owner, queue, state).
    pub fn about_task(
        task: &crate::task::Task,
        kind: String,
        topic: &str,
        ts_ms: u64,
        data: Value,
    ) -> Self {
        Self {
            seq: 0,
            kind,
            topic: topic.to_owned(),
            ts: ts_ms,
            key: Some(task.id.clone()),
            owner: task.owner.clone(),
            queue: task.queue.clone(),
            state: Some(task.state.as_str().to_owned()),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;

    #[test]
    fn task_update_carries_filter_fields() {
        let mut t = Task::new("t1");
        t.queue = Some("embedding".into());
        t.owner = Some("alice".into());
        let ev = Event::task_update(&t, 42);
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "task_update");
        assert_eq!(v["topic"], "celery:tasks");
        assert_eq!(v["queue"], "embedding");
        assert_eq!(v["owner"], "alice");
        assert_eq!(v["data"]["id"], "t1");
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), ev);
    }
}
