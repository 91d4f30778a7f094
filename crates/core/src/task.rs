//! The task record: what Vigil knows about one task, built up from its events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::attempt::Attempt;

/// Lifecycle state of a task, named as Celery names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskState {
    /// Known but not yet received by a worker.
    Pending,
    /// Received by a worker.
    Received,
    /// Running on a worker.
    Started,
    /// Running, with progress reported.
    Progress,
    /// Finished successfully.
    Success,
    /// Finished with an error.
    Failure,
    /// Failed and scheduled to run again.
    Retry,
    /// Cancelled.
    Revoked,
    /// Refused by the worker (Celery's `Reject`); requeued or dropped.
    Rejected,
}

impl TaskState {
    /// All states, in lifecycle order.
    pub const ALL: [TaskState; 9] = [
        Self::Pending,
        Self::Received,
        Self::Rejected,
        Self::Started,
        Self::Progress,
        Self::Retry,
        Self::Success,
        Self::Failure,
        Self::Revoked,
    ];

    /// The upper-case name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Received => "RECEIVED",
            Self::Started => "STARTED",
            Self::Progress => "PROGRESS",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Retry => "RETRY",
            Self::Revoked => "REVOKED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Parses a state name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether the task has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Revoked)
    }

    /// Where the state sits in one attempt's lifecycle; a later stage never goes back.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Received | Self::Rejected => 1,
            Self::Started => 2,
            Self::Progress => 3,
            Self::Retry => 4,
            Self::Success | Self::Failure | Self::Revoked => 5,
        }
    }

    /// Celery's precedence (`celery.states.PRECEDENCE`): a lower number wins. An event
    /// whose state has a higher number than the task's "happened before" it, so it does
    /// not move the state — except to or from RETRY, which always does. PROGRESS is a
    /// custom state to Celery, ranked between the final states and REVOKED.
    pub fn precedence(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::Progress => 2,
            Self::Revoked => 3,
            Self::Started => 4,
            Self::Received => 5,
            Self::Rejected => 6,
            Self::Retry => 7,
            Self::Pending => 8,
        }
    }
}

/// Everything Vigil knows about one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Celery's task uuid.
    pub id: String,
    /// Task name, e.g. `app.tasks.embed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Current state.
    pub state: TaskState,
    /// Queue (Celery routing key) the task was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Hostname of the worker running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Hostname of the client that sent it (`task-sent`'s `hostname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Exchange it was published to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// Routing key it was published with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Earliest time to run it, as Celery reports it (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Value>,
    /// When it expires, as Celery reports it (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Value>,
    /// The task that sent it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The first task of its workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_id: Option<String>,
    /// User id of whoever owns the task; viewers see only their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Positional arguments as the producer reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Keyword arguments as the producer reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<Value>,
    /// Progress, 0–100.
    #[serde(default)]
    pub progress: f64,
    /// Free-text description of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Result of a successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Exception of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// Traceback of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    /// How many times it was retried.
    #[serde(default)]
    pub retries: u64,
    /// Run time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<f64>,
    /// When it was sent (seconds since the epoch), latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<f64>,
    /// When a worker received it (seconds since the epoch), latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<f64>,
    /// When it started (seconds since the epoch), latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    /// When it finished (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    /// Batch job: batches in all.
    #[serde(
        rename = "totalBatches",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub total_batches: Option<u64>,
    /// Batch job: batches done.
    #[serde(
        rename = "completedBatches",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub completed_batches: Option<u64>,
    /// Batch job: seconds left.
    #[serde(
        rename = "estimatedTimeRemaining",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub eta_secs: Option<f64>,
    /// Position in its queue.
    #[serde(
        rename = "queuePosition",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_position: Option<u64>,
    /// Timestamp of the event that set the current state.
    pub state_at: f64,
    /// One entry per run (the first, then one per retry), each with its own times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Type of the last event applied, e.g. `task-started`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    /// Vigil first heard of it while its queue's breaker was open: the task existed in
    /// the cluster all the same, so it is recorded, and marked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub while_breaker_open: bool,
    /// Fields Vigil does not know, kept as the producer sent them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Task {
    /// The record as the APIs show it: the stored fields plus `timestamp`, the time of
    /// the current state as an RFC 3339 string (seed 000's task shape).
    pub fn view(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            let ts = if self.state_at.is_finite() {
                self.state_at
            } else {
                0.0
            };
            m.insert("timestamp".into(), Value::from(crate::time::iso8601(ts)));
        }
        v
    }

    /// A task Vigil has just heard of.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            state: TaskState::Pending,
            queue: None,
            worker: None,
            client: None,
            exchange: None,
            routing_key: None,
            eta: None,
            expires: None,
            parent_id: None,
            root_id: None,
            owner: None,
            args: None,
            kwargs: None,
            progress: 0.0,
            step: None,
            result: None,
            exception: None,
            traceback: None,
            retries: 0,
            runtime: None,
            sent_at: None,
            received_at: None,
            started_at: None,
            finished_at: None,
            total_batches: None,
            completed_batches: None,
            eta_secs: None,
            queue_position: None,
            state_at: f64::MIN,
            attempts: Vec::new(),
            last_event: None,
            while_breaker_open: false,
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for st in TaskState::ALL {
            assert_eq!(TaskState::parse(st.as_str()), Some(st));
            assert_eq!(TaskState::parse(&st.as_str().to_lowercase()), Some(st));
        }
        assert_eq!(TaskState::parse("DONE"), None);
    }

    #[test]
    fn task_json_omits_unknowns_and_keeps_extra() {
        let mut t = Task::new("a");
        t.extra.insert("custom".into(), Value::from(7));
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["state"], "PENDING");
        assert_eq!(v["extra"]["custom"], 7);
        assert!(v.get("name").is_none());
        let back: Task = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }
}
