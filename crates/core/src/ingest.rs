//! Producers' events, in Celery's own event format, parsed and validated.
//!
//! A body is one JSON object or an array of them. Every event of a batch is validated
//! before any is applied, so a batch is taken whole or refused whole.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::queue::ReportedQueue;
use crate::task::TaskState;
use crate::worker::{WorkerEvent, WorkerEventKind};

/// Largest batch one request may carry.
pub const MAX_BATCH: usize = 1000;
pub use crate::ids::MAX_ID_LEN;

/// The task event types Vigil accepts, each with the state it moves the task to.
pub const TASK_EVENT_TYPES: [(&str, TaskState); 8] = [
    ("task-received", TaskState::Received),
    ("task-started", TaskState::Started),
    ("task-progress", TaskState::Progress),
    ("task-succeeded", TaskState::Success),
    ("task-failed", TaskState::Failure),
    ("task-retried", TaskState::Retry),
    ("task-revoked", TaskState::Revoked),
    ("task-rejected", TaskState::Failure),
];

/// The worker event types, Celery's own.
pub const WORKER_EVENT_TYPES: [(&str, WorkerEventKind); 3] = [
    ("worker-online", WorkerEventKind::Online),
    ("worker-heartbeat", WorkerEventKind::Heartbeat),
    ("worker-offline", WorkerEventKind::Offline),
];

/// One validated event of any type. Task events dominate every batch, so they are not
/// boxed to save the smaller variants' space.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum IngestEvent {
    /// `task-*`.
    Task(TaskEvent),
    /// `worker-*`.
    Worker(WorkerEvent),
    /// `queue-stats`: what the broker says about a queue.
    QueueStats(ReportedQueue),
    /// `system-metrics`: free-form numbers for admins.
    SystemMetrics(Map<String, Value>),
}

/// One validated task event.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// Celery event type, e.g. `task-started`.
    pub kind: &'static str,
    /// State the event moves the task to.
    pub state: TaskState,
    /// Task uuid.
    pub uuid: String,
    /// Producer's timestamp (seconds since the epoch), if it sent one.
    pub timestamp: Option<f64>,
    /// Fields Vigil reads.
    pub fields: TaskFields,
    /// Everything else the producer sent, kept as it is.
    pub extra: Map<String, Value>,
}

/// The known fields of a task event, each checked for its type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFields {
    /// Task name.
    pub name: Option<String>,
    /// Worker hostname.
    pub hostname: Option<String>,
    /// Queue (`queue`, or Celery's `routing_key`).
    pub queue: Option<String>,
    /// Owning user id.
    pub owner: Option<String>,
    /// Positional arguments.
    pub args: Option<Value>,
    /// Keyword arguments.
    pub kwargs: Option<Value>,
    /// Retries so far.
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

/// Parses a request body into validated events, or the first reason to refuse it.
pub fn parse_body(body: &[u8]) -> Result<Vec<IngestEvent>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    match value {
        Value::Object(obj) => Ok(vec![parse_event(obj, "")?]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::invalid_field("[]", "empty batch"));
            }
            if items.len() > MAX_BATCH {
                return Err(ApiError::invalid_field(
                    "[]",
                    format!("a batch holds at most {MAX_BATCH} events"),
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(obj) => parse_event(obj, &format!("[{i}].")),
                    _ => Err(ApiError::invalid_field(
                        format!("[{i}]"),
                        "event must be an object",
                    )),
                })
                .collect()
        }
        _ => Err(ApiError::bad_request(
            "body must be an event object or an array of events",
        )),
    }
}

fn parse_event(mut obj: Map<String, Value>, at: &str) -> Result<IngestEvent, ApiError> {
    let mut f = Fields { obj: &mut obj, at };
    let kind_name = f
        .string("type")?
        .ok_or_else(|| f.err("type", "is required"))?;
    if let Some((kind, state)) = TASK_EVENT_TYPES.iter().find(|(k, _)| *k == kind_name) {
        return task_event(f, kind, *state).map(IngestEvent::Task);
    }
    if let Some((_, kind)) = WORKER_EVENT_TYPES.iter().find(|(k, _)| *k == kind_name) {
        return worker_event(f, *kind).map(IngestEvent::Worker);
    }
    match kind_name.as_str() {
        "queue-stats" => queue_stats(f).map(IngestEvent::QueueStats),
        "system-metrics" => {
            f.number("timestamp", 0.0, f64::MAX)?;
            Ok(IngestEvent::SystemMetrics(std::mem::take(f.obj)))
        }
        _ => Err(f.err("type", &format!("unknown event type `{kind_name}`"))),
    }
}

fn required_id(f: &mut Fields<'_>, name: &str) -> Result<String, ApiError> {
    let id = f.string(name)?.ok_or_else(|| f.err(name, "is required"))?;
    crate::ids::check(&id).map_err(|why| f.err(name, &why))?;
    Ok(id)
}

fn task_event(
    mut f: Fields<'_>,
    kind: &'static str,
    state: TaskState,
) -> Result<TaskEvent, ApiError> {
    let uuid = required_id(&mut f, "uuid")?;
    let timestamp = f.number("timestamp", 0.0, f64::MAX)?;
    let routing_key = f.string("routing_key")?;
    let fields = TaskFields {
        name: f.string("name")?,
        hostname: f.string("hostname")?,
        queue: f.string("queue")?.or(routing_key),
        owner: f.string("owner")?,
        args: f.any("args"),
        kwargs: f.any("kwargs"),
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
    };
    let extra = std::mem::take(f.obj);
    Ok(TaskEvent {
        kind,
        state,
        uuid,
        timestamp,
        fields,
        extra,
    })
}

fn worker_event(mut f: Fields<'_>, kind: WorkerEventKind) -> Result<WorkerEvent, ApiError> {
    Ok(WorkerEvent {
        kind,
        hostname: required_id(&mut f, "hostname")?,
        timestamp: f.number("timestamp", 0.0, f64::MAX)?,
        cpu: f.number("cpu", 0.0, f64::MAX)?,
        memory: f.number("memory", 0.0, f64::MAX)?,
        active: f.count("active")?,
        processed: f.count("processed")?,
        failed: f.count("failed")?,
        loadavg: f.any("loadavg"),
        freq: f.number("freq", 0.0, f64::MAX)?,
        extra: std::mem::take(f.obj),
    })
}

fn queue_stats(mut f: Fields<'_>) -> Result<ReportedQueue, ApiError> {
    let name = if f.obj.contains_key("queue") {
        required_id(&mut f, "queue")?
    } else {
        required_id(&mut f, "name")?
    };
    let depth = match f.count("depth")? {
        Some(d) => Some(d),
        None => f.count("messages")?,
    };
    Ok(ReportedQueue {
        name,
        depth,
        consumers: f.count("consumers")?,
        reported_at: f.number("timestamp", 0.0, f64::MAX)?.unwrap_or(0.0),
        extra: std::mem::take(f.obj),
    })
}

/// Takes known fields out of an event object, checking each one's type.
struct Fields<'a> {
    obj: &'a mut Map<String, Value>,
    at: &'a str,
}

impl Fields<'_> {
    fn err(&self, name: &str, msg: &str) -> ApiError {
        ApiError::invalid_field(format!("{}{name}", self.at), format!("{name} {msg}"))
    }

    fn any(&mut self, name: &str) -> Option<Value> {
        self.obj.remove(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.any(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(name, "must be a string")),
        }
    }

    fn number(&mut self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        match self.any(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
                _ => Err(self.err(name, &format!("must be between {min} and {max}"))),
            },
            Some(_) => Err(self.err(name, "must be a number")),
        }
    }

    fn count(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.any(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(name, "must be a non-negative integer")),
            Some(_) => Err(self.err(name, "must be a non-negative integer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(body: &[u8]) -> Vec<TaskEvent> {
        parse_body(body)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                IngestEvent::Task(t) => t,
                other => panic!("not a task event: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn parses_one_celery_event_and_keeps_unknown_fields() {
        let evs = tasks(
            br#"{"type":"task-received","uuid":"u1","name":"app.add","args":"(1, 2)",
                 "routing_key":"celery","timestamp":1700000000.5,"hostname":"w1","clock":12}"#,
        );
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!((e.kind, e.state), ("task-received", TaskState::Received));
        assert_eq!(e.fields.queue.as_deref(), Some("celery"));
        assert_eq!(e.fields.args, Some(Value::from("(1, 2)")));
        assert_eq!(e.timestamp, Some(1700000000.5));
        assert_eq!(e.extra.get("clock"), Some(&Value::from(12)));
        assert!(!e.extra.contains_key("type"));
    }

    #[test]
    fn parses_a_batch() {
        let evs = tasks(
            br#"[{"type":"task-started","uuid":"a"},{"type":"task-succeeded","uuid":"a","result":"3"}]"#,
        );
        assert_eq!(
            evs.iter().map(|e| e.state).collect::<Vec<_>>(),
            [TaskState::Started, TaskState::Success]
        );
    }

    fn refusal(body: &str) -> ApiError {
        parse_body(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn refuses_bad_input_with_the_field_to_blame() {
        assert_eq!(refusal("{not json").status, 400);
        assert_eq!(refusal("42").status, 400);
        assert_eq!(refusal("[]").status, 422);
        let e = refusal(r#"{"type":"task-started","uuid":"a","retries":"two"}"#);
        assert_eq!((e.status, e.field.as_deref()), (422, Some("retries")));
        let e = refusal(r#"[{"type":"task-started","uuid":"a"},{"type":"task-nope","uuid":"b"}]"#);
        assert_eq!(e.field.as_deref(), Some("[1].type"));
        let e = refusal(r#"{"type":"task-started"}"#);
        assert_eq!(e.field.as_deref(), Some("uuid"));
        let e = refusal(r#"{"type":"task-progress","uuid":"a","progress":101}"#);
        assert_eq!(e.field.as_deref(), Some("progress"));
        let e = refusal(r#"{"type":"task-started","uuid":""}"#);
        assert_eq!(e.field.as_deref(), Some("uuid"));
        let e = refusal(r#"{"type":"task-started","uuid":5}"#);
        assert_eq!(e.field.as_deref(), Some("uuid"));
        let e = refusal(r#"[1]"#);
        assert_eq!(e.field.as_deref(), Some("[0]"));
    }

    #[test]
    fn parses_worker_queue_and_metrics_events() {
        let evs = parse_body(
            br#"[{"type":"worker-heartbeat","hostname":"celery@w1","active":2,"processed":10,"loadavg":[0.1,0.2,0.3],"sw_ver":"5.4"},
                 {"type":"queue-stats","queue":"embedding","messages":12,"consumers":3},
                 {"type":"system-metrics","cpu":40.5,"timestamp":5}]"#,
        )
        .unwrap();
        let IngestEvent::Worker(w) = &evs[0] else {
            panic!()
        };
        assert_eq!(
            (w.hostname.as_str(), w.active, w.processed),
            ("celery@w1", Some(2), Some(10))
        );
        assert_eq!(w.extra.get("sw_ver"), Some(&Value::from("5.4")));
        let IngestEvent::QueueStats(q) = &evs[1] else {
            panic!()
        };
        assert_eq!(
            (q.name.as_str(), q.depth, q.consumers),
            ("embedding", Some(12), Some(3))
        );
        let IngestEvent::SystemMetrics(m) = &evs[2] else {
            panic!()
        };
        assert_eq!(m.get("cpu"), Some(&Value::from(40.5)));
        assert_eq!(
            refusal(r#"{"type":"worker-online"}"#).field.as_deref(),
            Some("hostname")
        );
        assert_eq!(
            refusal(r#"{"type":"queue-stats","queue":"q","depth":-1}"#)
                .field
                .as_deref(),
            Some("depth")
        );
    }

    #[test]
    fn batch_job_fields_are_typed() {
        let t = &tasks(br#"{"type":"task-progress","uuid":"j","totalBatches":10,"completedBatches":4,"estimatedTimeRemaining":12.5}"#)[0];
        assert_eq!(
            (
                t.fields.total_batches,
                t.fields.completed_batches,
                t.fields.eta_secs
            ),
            (Some(10), Some(4), Some(12.5))
        );
        assert_eq!(
            refusal(r#"{"type":"task-progress","uuid":"j","totalBatches":"ten"}"#)
                .field
                .as_deref(),
            Some("totalBatches")
        );
    }

    #[test]
    fn refuses_oversized_batches() {
        let one = r#"{"type":"task-started","uuid":"a"}"#;
        let body = format!("[{}]", vec![one; MAX_BATCH + 1].join(","));
        assert_eq!(refusal(&body).status, 422);
    }
}
