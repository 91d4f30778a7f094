//! Workers and queues: `GET /api/v1/workers`, `/api/v1/workers/{id}`, `/api/v1/queues`.

use serde_json::{json, Value};
use spin_sdk::http::Response;
use vigil_core::error::ApiError;
use vigil_core::keys;
use vigil_core::queue::{summarize, ReportedQueue};
use vigil_core::task::Task;
use vigil_core::worker::{Worker, DEFAULT_OFFLINE_AFTER};

use crate::request::Req;
use crate::store::Kv;

/// A worker as shown: its current status (silent ones are offline) and uptime.
pub fn view(w: &Worker, now: f64) -> Value {
    let mut v = serde_json::to_value(w).unwrap_or_default();
    v["status"] = json!(w.status_at(now, DEFAULT_OFFLINE_AFTER));
    v["uptime"] = json!(w.uptime(now));
    v["heartbeat"] = json!(vigil_core::time::iso8601(w.heartbeat_at));
    v
}

/// Every worker, current status computed now.
pub fn all(kv: &Kv) -> Result<Vec<Value>, ApiError> {
    let now = crate::clock::secs();
    let mut workers: Vec<Worker> = kv.all(keys::WORKER_PREFIX)?;
    workers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(workers.iter().map(|w| view(w, now)).collect())
}

/// `GET /api/v1/workers`.
pub fn list(req: &Req) -> Result<Response, ApiError> {
    crate::auth::reader(req)?;
    Ok(crate::json_response(
        200,
        &json!({ "workers": all(&Kv::open()?)? }),
    ))
}

/// `GET /api/v1/workers/{id}`.
pub fn get(req: &Req, id: &str) -> Result<Response, ApiError> {
    crate::auth::reader(req)?;
    let w: Option<Worker> = Kv::open()?.get(&format!("{}{id}", keys::WORKER_PREFIX))?;
    let w = w.ok_or_else(|| ApiError::not_found(format!("no worker `{id}`")))?;
    Ok(crate::json_response(200, &view(&w, crate::clock::secs())))
}

/// Every queue: counts derived from the tasks held plus what producers reported.
pub fn queues(kv: &Kv) -> Result<Vec<Value>, ApiError> {
    let tasks: Vec<Task> = kv.all(keys::TASK_PREFIX)?;
    let reported: Vec<ReportedQueue> = kv.all(keys::QUEUE_PREFIX)?;
    let summary = summarize(&tasks, &reported, crate::clock::secs());
    Ok(summary
        .values()
        .map(|q| serde_json::to_value(q).unwrap_or_default())
        .collect())
}

/// `GET /api/v1/queues`.
pub fn list_queues(req: &Req) -> Result<Response, ApiError> {
    crate::auth::reader(req)?;
    Ok(crate::json_response(
        200,
        &json!({ "queues": queues(&Kv::open()?)? }),
    ))
}
