//! Workers and queues: `GET /api/v1/workers`, `/api/v1/workers/{id}`, `/api/v1/queues`.

use serde_json::{json, Value};
use spin_sdk::http::Response;
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::keys;
use vigil_core::queue::QueueSummary;
use vigil_core::worker::{expire, Worker, WorkerStatus, DEFAULT_OFFLINE_AFTER};
use vigil_store::{aggregate, registry};

use crate::request::Req;
use crate::routes::records::update_json;
use crate::store::{api_error, Kv};

/// Seconds of silence after which a worker is offline (Spin variable
/// `worker_offline_after_secs`, default [`DEFAULT_OFFLINE_AFTER`]).
pub fn offline_after() -> f64 {
    spin_sdk::variables::get("worker_offline_after_secs")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(DEFAULT_OFFLINE_AFTER)
}

/// A worker as shown: its current status (silent ones are offline) and uptime.
pub fn view(w: &Worker, now: f64) -> Value {
    let mut v = w.public();
    v["status"] = json!(w.status_at(now, offline_after()));
    v["uptime"] = json!(w.uptime(now));
    v["heartbeat"] = json!(vigil_core::time::iso8601(w.heartbeat_at));
    v
}

/// Every registered worker's record, by id.
fn records(kv: &Kv) -> Result<Vec<Worker>, ApiError> {
    let names = registry::names(kv, keys::WORKER_NAMES).map_err(api_error)?;
    let keys: Vec<String> = names.iter().map(|n| keys::worker(n)).collect();
    kv.get_all(&keys)
}

/// Every worker, current status computed now.
pub fn all(kv: &Kv) -> Result<Vec<Value>, ApiError> {
    let now = crate::clock::secs();
    Ok(records(kv)?.iter().map(|w| view(w, now)).collect())
}

/// `POST /api/v1/workers/sweep` (admin): marks workers that missed their heartbeats
/// offline and publishes `worker_deregistered` for each. The host calls it periodically;
/// without the host (plain `spin up`) a cron job can.
pub fn sweep(req: &Req) -> Result<Response, ApiError> {
    crate::auth::admin(req)?;
    let kv = Kv::open()?;
    let now = crate::clock::secs();
    let limit = offline_after();
    let mut expired = Vec::new();
    let mut events = Vec::new();
    for w in records(&kv)? {
        if expire(&w, now, limit).is_none() {
            continue;
        }
        // Marked offline only if still silent when swapped: a heartbeat that raced in wins.
        let gone = update_json(&kv, &keys::worker(&w.id), |cur: Option<Worker>| {
            let gone = expire(&cur?, now, limit)?;
            Some((gone.clone(), gone))
        })?;
        if let Some(gone) = gone {
            let mut e = Event::new(
                "worker_deregistered",
                event::WORKERS_TOPIC,
                crate::clock::millis(),
                view(&gone, now),
            );
            e.key = Some(gone.id.clone());
            e.state = Some("offline".into());
            events.push(e);
            expired.push(gone.id);
        }
    }
    kv.publish(&events)?;
    Ok(crate::json_response(200, &json!({ "expired": expired })))
}

/// `GET /api/v1/workers`.
pub fn list(req: &Req) -> Result<Response, ApiError> {
    crate::auth::reader(req)?;
    Ok(crate::json_response(
        200,
        &json!({ "workers": all(&Kv::open()?)? }),
    ))
}

/// `GET /api/v1/workers/{id}`: status, pid, software, load, heartbeat history, task
/// counts by event type, what `inspect stats` said (pool, prefetch, …), and
/// `tasks_by_state`: the tasks Vigil holds that it ran, by state (counters).
pub fn get(req: &Req, id: &str) -> Result<Response, ApiError> {
    crate::auth::reader(req)?;
    let kv = Kv::open()?;
    let w: Option<Worker> = kv.get(&keys::worker(id))?;
    let w = w.ok_or_else(|| ApiError::not_found(format!("no worker `{id}`")))?;
    let mut v = view(&w, crate::clock::secs());
    v["tasks_by_state"] = json!(aggregate::worker_counts(&kv, id).map_err(api_error)?);
    Ok(crate::json_response(200, &v))
}

/// `POST /api/v1/workers/{id}/control` (admin), body `{"command": …, …}`: publishes a
/// `control` command for the bridge, which carries it out on that worker with Celery's
/// control API. Answers 202 `{"status":"sent","command":{…}}`.
pub fn control(req: &Req, id: &str) -> Result<Response, ApiError> {
    let claims = crate::auth::admin(req)?;
    let body = req.json_object()?;
    let kv = Kv::open()?;
    if kv.get::<Worker>(&keys::worker(id))?.is_none() {
        return Err(ApiError::not_found(format!("no worker `{id}`")));
    }
    let command = vigil_core::control::command(id, &body, &claims.sub)?;
    kv.publish(&[Event::new(
        vigil_core::control::CONTROL,
        event::COMMANDS_TOPIC,
        crate::clock::millis(),
        command.clone(),
    )])?;
    Ok(crate::json_response(
        202,
        &json!({ "status": "sent", "command": command }),
    ))
}

/// Every queue: counts of the tasks held (counters) plus what producers reported.
pub fn summaries(kv: &Kv) -> Result<Vec<QueueSummary>, ApiError> {
    aggregate::summaries(kv, crate::clock::secs()).map_err(api_error)
}

/// [`summaries`] as the API shows them.
pub fn queues(kv: &Kv) -> Result<Vec<Value>, ApiError> {
    Ok(summaries(kv)?
        .iter()
        .map(|q| serde_json::to_value(q).unwrap_or_default())
        .collect())
}

/// Every worker with its current status (silent ones are offline).
pub fn with_status(kv: &Kv) -> Result<Vec<(Worker, WorkerStatus)>, ApiError> {
    let now = crate::clock::secs();
    Ok(records(kv)?
        .into_iter()
        .map(|w| {
            let status = w.status_at(now, offline_after());
            (w, status)
        })
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
