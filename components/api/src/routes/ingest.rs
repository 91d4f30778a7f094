//! `POST /api/v1/events`: producers report task events (Celery's event format).

use std::collections::HashMap;

use spin_sdk::http::Response;
use vigil_core::apply::apply;
use vigil_core::error::ApiError;
use vigil_core::event::Event;
use vigil_core::ingest::parse_body;
use vigil_core::task::Task;

use crate::request::Req;
use crate::store::Kv;

/// Validates the whole batch first, then writes the task records, then publishes the
/// events. It answers 202 only once the events are durable in the outbox; a failure
/// before that answers 503 and the producer retries (applying an event twice is harmless).
pub fn post(req: &Req) -> Result<Response, ApiError> {
    crate::auth::producer(req)?;
    let events = parse_body(&req.body)?;
    let kv = Kv::open()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut tasks: HashMap<String, Task> = HashMap::new();
    let mut published = Vec::with_capacity(events.len());
    for ev in &events {
        let current = match tasks.remove(&ev.uuid) {
            Some(t) => Some(t),
            None => kv.task(&ev.uuid)?,
        };
        let task = apply(current, ev, now);
        published.push(Event::task_update(&task, (now * 1000.0) as u64));
        tasks.insert(ev.uuid.clone(), task);
    }
    for task in tasks.values() {
        kv.put_task(task)?;
    }
    kv.publish(&published)?;
    Ok(crate::json_response(
        202,
        &serde_json::json!({ "accepted": events.len() }),
    ))
}
