//! `POST /api/v1/events`: producers report task, worker, queue and metrics events
//! (Celery's event format plus Vigil's own types).

use spin_sdk::http::Response;
use vigil_core::error::ApiError;
use vigil_core::ingest::parse_body;

use crate::request::Req;
use crate::routes::batch::Batch;
use crate::store::Kv;

/// Validates the whole batch, applies it (refusing it whole if a breaker is open),
/// writes the records, then publishes the events. It answers 202 only once the events
/// are durable in the outbox; a failure before that answers 503 and the producer
/// retries (applying an event twice is harmless). A batch that finished tasks also
/// expires a bounded number of old ones (see [`super::retention`]).
pub fn post(req: &Req) -> Result<Response, ApiError> {
    crate::auth::producer(req)?;
    let events = parse_body(&req.body)?;
    let kv = Kv::open()?;
    let mut batch = Batch::new(&kv);
    for ev in &events {
        batch.apply(ev)?;
    }
    let finished = batch.commit()?;
    super::retention::after_ingest(&kv, finished);
    Ok(crate::json_response(
        202,
        &serde_json::json!({ "accepted": events.len() }),
    ))
}
