//! Task events: Celery's own types, Vigil's `task-progress`, and custom `task-*` ones.

use serde_json::{Map, Value};

use super::fields::Fields;
use crate::error::ApiError;
use crate::task::TaskState;

/// The task event types that move a task's state, each with that state (Celery's
/// `TASK_EVENT_TO_STATE`, plus Vigil's `task-progress`). Any other `task-*` type is a
/// custom event: kept in the task's history, its fields kept, its state unchanged.
pub const TASK_EVENT_TYPES: [(&str, TaskState); 9] = [
    ("task-sent", TaskState::Pending),
    ("task-received", TaskState::Received),
    ("task-started", TaskState::Started),
    ("task-progress", TaskState::Progress),
    ("task-succeeded", TaskState::Success),
    ("task-failed", TaskState::Failure),
    ("task-retried", TaskState::Retry),
    ("task-revoked", TaskState::Revoked),
    ("task-rejected", TaskState::Rejected),
];

/// Longest custom event type accepted (`task-` included).
pub const MAX_TYPE_LEN: usize = 100;

/// One validated task event.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// Celery event type, e.g. `task-started`.
    pub kind: String,
    /// State the event moves the task to; `None` for a custom event.
    pub state: Option<TaskState>,
    /// Task uuid.
    pub uuid: String,
    /// Producer's timestamp (seconds since the epoch), if it sent one.
    pub timestamp: Option<f64>,
    /// Fields Vigil reads.
    pub fields: TaskFields,
    /// Everything else the producer sent, kept as it is.
    pub extra: Map<String, Value>,
    /// The event as sent, for the task's history.
    pub raw: Map<String, Value>,
}

/// The known fields of a task event, each checked for its type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFields {
    /// Task name.
    pub name: Option<String>,
    /// Hostname of the sender: the worker, or for `task-sent` the client.
    pub hostname: Option<String>,
    /// Queue (`queue`, or Celery's `routing_key`).
    pub queue: Option<String>,
    /// Exchange (`task-sent`).
    pub exchange: Option<String>,
    /// Routing key (`task-sent`).
    pub routing_key: Option<String>,
    /// Owning user id.
    pub owner: Option<String>,
    /// Positional arguments.
    pub args: Option<Value>,
    /// Keyword arguments.
    pub kwargs: Option<Value>,
    /// Earliest run time.
    pub eta: Option<Value>,
    /// Expiry time.
    pub expires: Option<Value>,
    /// The task that sent this one.
    pub parent_id: Option<String>,
    /// The first task of the workflow.
    pub root_id: Option<String>,
    /// Retries so far: the attempt's number.
    pub retries: Option<u64>,
    /// Run time, seconds.
    pub runtime: Option<f64>,
    /// Result of a success.
    pub result: Option<Value>,
    /// Exception of a failure.
    pub exception: Option<String>,
    /// Traceback of a failure.
    pub traceback: Option<String>,
    /// Progress, 0–100.
    pub progress: Option<f64>,
    /// Current step.
    pub step: Option<String>,
    /// Batch job: batches in all (seed 000 `totalBatches`).
    pub total_batches: Option<u64>,
    /// Batch job: batches done (`completedBatches`).
    pub completed_batches: Option<u64>,
    /// Batch job: seconds left (`estimatedTimeRemaining`).
    pub eta_secs: Option<f64>,
    /// Position in the queue (`queuePosition`).
    pub queue_position: Option<u64>,
}

pub(super) fn parse(
    mut f: Fields<'_>,
    kind: String,
    raw: Map<String, Value>,
) -> Result<TaskEvent, ApiError> {
    let state = TASK_EVENT_TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| *s);
    if state.is_none() && (kind.len() > MAX_TYPE_LEN || kind.chars().any(char::is_control)) {
        return Err(f.err(
            "type",
            &format!(
                "a custom task event type must be at most {MAX_TYPE_LEN} printable characters"
            ),
        ));
    }
    let uuid = f.id("uuid")?;
    let timestamp = f.number("timestamp", 0.0, f64::MAX)?;
    let fields = fields(&mut f)?;
    Ok(TaskEvent {
        kind,
        state,
        uuid,
        timestamp,
        fields,
        extra: f.rest(),
        raw,
    })
}

fn fields(f: &mut Fields<'_>) -> Result<TaskFields, ApiError> {
    let routing_key = f.string("routing_key")?;
    Ok(TaskFields {
        name: f.string("name")?,
        hostname: f.string("hostname")?,
        queue: f.string("queue")?.or_else(|| routing_key.clone()),
        exchange: f.string("exchange")?,
        routing_key,
        owner: f.string("owner")?,
        args: f.any("args"),
        kwargs: f.any("kwargs"),
        eta: f.time("eta")?,
        expires: f.time("expires")?,
        parent_id: f.optional_id("parent_id")?,
        root_id: f.optional_id("root_id")?,
        retries: f.count("retries")?,
        runtime: f.number("runtime", 0.0, f64::MAX)?,
        result: f.any("result"),
        exception: f.string("exception")?,
        traceback: f.string("traceback")?,
        progress: f.number("progress", 0.0, 100.0)?,
        step: f.string("step")?,
        total_batches: f.count("totalBatches")?,
        completed_batches: f.count("completedBatches")?,
        eta_secs: f.number("estimatedTimeRemaining", 0.0, f64::MAX)?,
        queue_position: f.count("queuePosition")?,
    })
}
