//! Seed 002's circuit-breaker API: `GET /api/v1/queue/circuit-breaker-status`,
//! `POST /api/v1/queue/open-circuit-breaker` and `/close-circuit-breaker` with
//! `{reason}`, answering `{"status":"success","data":{state,opened_at,closed_at,metadata}}`.
//! The queue is `?queue=` (or `queue` in the body), `celery` — Celery's default — if absent.

use serde_json::{json, Value};
use spin_sdk::http::Response;
use vigil_core::breaker::{Breaker, BreakerConfig};
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::keys;

use crate::request::Req;
use crate::routes::records::update_json;
use crate::store::{api_error, Kv};

/// The queue the seed's unparameterised calls mean.
const DEFAULT_QUEUE: &str = "celery";

fn queue(req: &Req, body: Option<&serde_json::Map<String, Value>>) -> Result<String, ApiError> {
    let from_body = body.and_then(|b| b.get("queue"));
    let q = match (req.query_param("queue"), from_body) {
        (Some(q), _) => q,
        (None, Some(Value::String(q))) => q.clone(),
        (None, Some(_)) => return Err(ApiError::invalid_field("queue", "queue must be a string")),
        (None, None) => DEFAULT_QUEUE.to_owned(),
    };
    vigil_core::ids::check(&q)
        .map_err(|why| ApiError::invalid_field("queue", format!("queue {why}")))?;
    Ok(q)
}

fn load(kv: &Kv, queue: &str) -> Result<Breaker, ApiError> {
    Ok(kv
        .get(&keys::breaker(queue))?
        .unwrap_or_else(|| Breaker::new(queue)))
}

fn success(data: Value) -> Response {
    crate::json_response(200, &json!({ "status": "success", "data": data }))
}

/// `GET …/circuit-breaker-status`: for any valid token — producers too, so the bridge's
/// publish guard can ask before Celery publishes a task.
pub fn status(req: &Req) -> Result<Response, ApiError> {
    crate::auth::claims(req)?;
    let q = queue(req, None)?;
    let b = load(&Kv::open()?, &q)?;
    Ok(success(
        b.status(crate::clock::secs(), &BreakerConfig::default()),
    ))
}

/// Refuses with 503 `circuit_open` (and the breaker's reason) when `queue`'s breaker is
/// open: what job submission asks before creating a task.
pub fn admit(kv: &Kv, queue: &str) -> Result<(), ApiError> {
    let b = load(kv, queue)?;
    if b.admits(crate::clock::secs(), &BreakerConfig::default()) {
        Ok(())
    } else {
        Err(ApiError::circuit_open(queue, b.reason.as_deref()))
    }
}

/// `POST …/open-circuit-breaker` or `…/close-circuit-breaker` (admin).
pub fn set(req: &Req, open: bool) -> Result<Response, ApiError> {
    let claims = crate::auth::admin(req)?;
    let body = req.json_object()?;
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(format!("{r} (by {})", claims.sub)),
        Some(_) => return Err(ApiError::invalid_field("reason", "reason must be a string")),
    };
    let q = queue(req, Some(&body))?;
    let kv = Kv::open()?;
    let now = crate::clock::secs();
    let status = update_json(&kv, &keys::breaker(&q), |cur: Option<Breaker>| {
        let mut b = cur.unwrap_or_else(|| Breaker::new(q.as_str()));
        if open {
            b.open(reason.clone(), now);
        } else {
            b.close(reason.clone(), now);
        }
        let status = b.status(now, &BreakerConfig::default());
        Some((b, status))
    })?
    .unwrap_or_default();
    vigil_store::registry::ensure(&kv, keys::QUEUE_NAMES, [q.as_str()].into())
        .map_err(api_error)?;
    kv.publish(&[Event::new(
        "circuit_breaker",
        event::BREAKERS_TOPIC,
        crate::clock::millis(),
        status.clone(),
    )])?;
    Ok(success(status))
}
