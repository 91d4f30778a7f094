//! Producers' events, in Celery's own event format, parsed and validated.
//!
//! A body is one JSON object or an array of them.
//!
//! **The batch rule.** A request that is not an event or an array of events at all —
//! malformed JSON, another JSON value, an empty or oversized array — is refused whole
//! (400/422) and changes nothing. Inside an array, each event stands on its own: the
//! usable ones are accepted, and each unusable one is listed by its index with the one
//! error shape, so a stream forwarder never loses valid events because of an invalid
//! neighbour (`202 {"accepted":n,"refused":[{"index":i,"error":{…}}]}`). An array none of
//! whose events is usable is refused whole with the first one's error (422), as a lone
//! invalid event is. Unknown `task-*` types are custom events (Celery's `send_event`),
//! not errors.

mod fields;
mod task;

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::queue::ReportedQueue;
use crate::worker::{WorkerEvent, WorkerEventKind, WorkerStats};
use fields::Fields;

pub use task::{TaskEvent, TaskFields, TASK_EVENT_TYPES};

/// Largest batch one request may carry.
pub const MAX_BATCH: usize = 1000;
pub use crate::ids::MAX_ID_LEN;

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
    /// `task-*`, Celery's own, Vigil's `task-progress`, or custom.
    Task(TaskEvent),
    /// `worker-*`.
    Worker(WorkerEvent),
    /// `worker-stats`: what Celery's `inspect stats` says about a worker (the bridge).
    WorkerStats(WorkerStats),
    /// `queue-stats`: what the broker says about a queue.
    QueueStats(ReportedQueue),
    /// `system-metrics`: free-form numbers for admins.
    SystemMetrics(Map<String, Value>),
}

/// An event of a batch that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Its position in the array (0 for a lone object).
    pub index: usize,
    /// Why, in the one error shape (its `field` is prefixed with `[index].`).
    pub error: ApiError,
}

/// A parsed body: the usable events in order, and the refused ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// Accepted events, in the order sent.
    pub events: Vec<IngestEvent>,
    /// Events refused one by one.
    pub refused: Vec<Refused>,
}

impl Parsed {
    /// The body of the `202` answer: `{"accepted":n,"refused":[{"index","error"}]}`.
    pub fn answer(&self) -> Value {
        let refused: Vec<Value> = self
            .refused
            .iter()
            .map(|r| json!({ "index": r.index, "error": r.error }))
            .collect();
        json!({ "accepted": self.events.len(), "refused": refused })
    }
}

/// Parses a request body by the batch rule (module docs).
pub fn parse_body(body: &[u8]) -> Result<Parsed, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let items = match value {
        Value::Object(obj) => {
            let event = parse_event(obj, "")?;
            return Ok(Parsed {
                events: vec![event],
                refused: Vec::new(),
            });
        }
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::bad_request(
                "body must be an event object or an array of events",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid_field("[]", "empty batch"));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "[]",
            format!("a batch holds at most {MAX_BATCH} events"),
        ));
    }
    let mut parsed = Parsed::default();
    for (index, item) in items.into_iter().enumerate() {
        let at = format!("[{index}].");
        let result = match item {
            Value::Object(obj) => parse_event(obj, &at),
            _ => Err(ApiError::invalid_field(
                format!("[{index}]"),
                "event must be an object",
            )),
        };
        match result {
            Ok(event) => parsed.events.push(event),
            Err(error) => parsed.refused.push(Refused { index, error }),
        }
    }
    match parsed.refused.first() {
        Some(first) if parsed.events.is_empty() => Err(first.error.clone()),
        _ => Ok(parsed),
    }
}

fn parse_event(obj: Map<String, Value>, at: &str) -> Result<IngestEvent, ApiError> {
    let raw = obj.clone();
    let mut obj = obj;
    let mut f = Fields::new(&mut obj, at);
    let kind_name = f
        .string("type")?
        .ok_or_else(|| f.err("type", "is required"))?;
    if kind_name.starts_with("task-") {
        return task::parse(f, kind_name, raw).map(IngestEvent::Task);
    }
    if let Some((_, kind)) = WORKER_EVENT_TYPES.iter().find(|(k, _)| *k == kind_name) {
        return worker_event(f, *kind).map(IngestEvent::Worker);
    }
    match kind_name.as_str() {
        "worker-stats" => worker_stats(f).map(IngestEvent::WorkerStats),
        "queue-stats" => queue_stats(f).map(IngestEvent::QueueStats),
        "system-metrics" => {
            f.number("timestamp", 0.0, f64::MAX)?;
            Ok(IngestEvent::SystemMetrics(f.rest()))
        }
        _ => Err(f.err("type", &format!("unknown event type `{kind_name}`"))),
    }
}

fn worker_event(mut f: Fields<'_>, kind: WorkerEventKind) -> Result<WorkerEvent, ApiError> {
    Ok(WorkerEvent {
        kind,
        hostname: f.id("hostname")?,
        timestamp: f.number("timestamp", 0.0, f64::MAX)?,
        cpu: f.number("cpu", 0.0, f64::MAX)?,
        memory: f.number("memory", 0.0, f64::MAX)?,
        active: f.count("active")?,
        processed: f.count("processed")?,
        failed: f.count("failed")?,
        loadavg: f.any("loadavg"),
        freq: f.number("freq", 0.0, f64::MAX)?,
        pid: f.count("pid")?,
        sw_ident: f.string("sw_ident")?,
        sw_ver: f.string("sw_ver")?,
        sw_sys: f.string("sw_sys")?,
        extra: f.rest(),
    })
}

fn worker_stats(mut f: Fields<'_>) -> Result<WorkerStats, ApiError> {
    Ok(WorkerStats {
        hostname: f.id("hostname")?,
        timestamp: f.number("timestamp", 0.0, f64::MAX)?,
        stats: f.object("stats")?,
        queues: f.any("queues"),
    })
}

fn queue_stats(mut f: Fields<'_>) -> Result<ReportedQueue, ApiError> {
    let name = if f.has("queue") {
        f.id("queue")?
    } else {
        f.id("name")?
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
        extra: f.rest(),
    })
}

#[cfg(test)]
mod tests;
