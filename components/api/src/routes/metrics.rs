//! `GET /api/v1/metrics/system` (admins): seed 003's `SystemMetrics`, the same payload
//! the `system-metrics` event carries.

use serde_json::{Map, Value};
use spin_sdk::http::Response;
use vigil_core::error::ApiError;
use vigil_core::keys;
use vigil_core::queue::QueueSummary;
use vigil_core::worker::{Worker, WorkerStatus};

use crate::request::Req;
use crate::store::Kv;

/// The handler.
pub fn get(req: &Req) -> Result<Response, ApiError> {
    crate::auth::admin(req)?;
    let kv = Kv::open()?;
    let queues = super::workers::summaries(&kv)?;
    let workers = super::workers::with_status(&kv)?;
    Ok(crate::json_response(200, &system(&kv, &queues, &workers)?))
}

/// The metrics from what producers last reported and the current records.
pub fn system(
    kv: &Kv,
    queues: &[QueueSummary],
    workers: &[(Worker, WorkerStatus)],
) -> Result<Value, ApiError> {
    let reported: Option<Map<String, Value>> = kv.get(keys::SYSTEM_METRICS)?;
    let pairs: Vec<(&Worker, WorkerStatus)> = workers.iter().map(|(w, s)| (w, *s)).collect();
    let now = vigil_core::time::iso8601(crate::clock::secs());
    Ok(vigil_core::jobs::system_metrics(
        reported.as_ref(),
        queues,
        &pairs,
        &now,
    ))
}
