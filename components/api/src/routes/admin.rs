//! Seed 000's Celery admin API, unchanged paths and shapes (admin role):
//! `GET /api/admin/celery/tasks`, `POST …/tasks/{id}/revoke`, `POST …/jobs/{name}`,
//! `GET …/jobs/{id}/wait`, `GET …/queues/stats`, `GET …/workers`.

use serde_json::{json, Value};
use spin_sdk::http::Response;
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::ingest::IngestEvent;
use vigil_core::task::{Task, TaskState};
use vigil_rules::park::Interest;

use crate::request::Req;
use crate::routes::ingest::Batch;
use crate::routes::wait::{Next, Wait, MAX_WAIT_SECS};
use crate::store::Kv;

/// `GET /api/admin/celery/tasks?queue=&state=&limit=`: a JSON array, newest first.
pub fn tasks(req: &Req) -> Result<Response, ApiError> {
    crate::auth::admin(req)?;
    let list = crate::routes::tasks::query(req, None, false)?;
    Ok(crate::json_response(
        200,
        &Value::Array(list.tasks.iter().map(Task::view).collect()),
    ))
}

/// `POST /api/admin/celery/tasks/{id}/revoke?terminate=&signal=`: records the
/// revocation as a `task-revoked` event and publishes a `revoke` command, which the
/// bridge carries out with Celery's `revoke(terminate=…, signal=…)`.
pub fn revoke(req: &Req, id: &str) -> Result<Response, ApiError> {
    let claims = crate::auth::admin(req)?;
    let terminate = req.query_bool("terminate")?;
    let signal =
        vigil_core::control::revoke_signal(terminate, req.query_param("signal").as_deref())?;
    let kv = Kv::open()?;
    let task = crate::routes::tasks::load(&kv, id)?
        .ok_or_else(|| crate::routes::retention::unknown_task(id))?;
    if task.state.is_terminal() {
        return Err(ApiError::conflict(format!(
            "task `{id}` already finished ({})",
            task.state.as_str()
        )));
    }
    let body = json!({ "type": "task-revoked", "uuid": id, "terminated": terminate, "revoked_by": claims.sub });
    let events = vigil_core::ingest::parse_body(body.to_string().as_bytes())?.events;
    let mut batch = Batch::new(&kv);
    batch.apply(&events[0])?;
    let command = json!({ "command": "revoke", "task_id": id, "terminate": terminate,
                          "signal": signal, "by": claims.sub });
    batch.publish(Event::new(
        "revoke",
        event::COMMANDS_TOPIC,
        crate::clock::millis(),
        command,
    ));
    batch.commit()?;
    Ok(crate::json_response(
        200,
        &json!({ "status": "revoked", "task_id": id }),
    ))
}

/// `POST /api/admin/celery/jobs/{name}`: records a job as PENDING (a `task-sent`),
/// owned by the caller, and publishes a `submit` command, which the bridge carries out
/// with Celery's `send_task(name, args, kwargs, task_id=job_id, queue=queue)`. Refused
/// with 503 `circuit_open` while the queue's breaker is open: that is what a breaker
/// gates.
pub fn submit(req: &Req, name: &str) -> Result<Response, ApiError> {
    let claims = crate::auth::admin(req)?;
    let body = req.json_object()?;
    let queue = match body.get("queue") {
        None => "celery".to_owned(),
        Some(Value::String(q)) => q.clone(),
        Some(_) => return Err(ApiError::invalid_field("queue", "queue must be a string")),
    };
    let kv = Kv::open()?;
    crate::routes::breaker::admit(&kv, &queue)?;
    let id = new_id()?;
    let mut batch = Batch::new(&kv);
    let sent = json!({
        "type": "task-sent", "uuid": id, "name": name, "queue": queue, "retries": 0,
        "owner": claims.sub, "args": body.get("args"), "kwargs": body.get("kwargs"), "job": true,
    });
    for ev in vigil_core::ingest::parse_body(sent.to_string().as_bytes())?.events {
        if let IngestEvent::Task(_) = ev {
            batch.apply(&ev)?;
        }
    }
    let command = json!({ "command": "submit", "job_id": id, "name": name, "queue": queue,
                          "args": body.get("args"), "kwargs": body.get("kwargs"), "by": claims.sub });
    batch.publish(Event::new(
        "submit",
        event::COMMANDS_TOPIC,
        crate::clock::millis(),
        command,
    ));
    batch.commit()?;
    Ok(crate::json_response(
        202,
        &json!({ "job_id": id, "status": "submitted" }),
    ))
}

fn new_id() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| ApiError::internal("no randomness"))?;
    b[6] = (b[6] & 0x0f) | 0x40; // UUID v4
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The seed's finished-job body.
fn job_view(t: &Task) -> Value {
    let status = match t.state {
        TaskState::Success => "completed",
        TaskState::Failure => "failed",
        TaskState::Revoked => "revoked",
        _ => "pending",
    };
    let mut v = t.view();
    v["job_id"] = json!(t.id);
    v["status"] = json!(status);
    v["error"] = json!(t.exception);
    v
}

/// `GET /api/admin/celery/jobs/{id}/wait?timeout=S`: the job as soon as it finishes,
/// or `{"status":"pending","message":"Still running"}` after S seconds (default 60).
pub fn wait(req: &Req, id: &str) -> Result<Response, ApiError> {
    let claims = crate::auth::admin(req)?;
    let timeout = req.query_u64("timeout", 0..=MAX_WAIT_SECS, 60)?;
    let kv = Kv::open()?;
    let wait = Wait::new(req, timeout);
    loop {
        // The head before the record: a change published after it wakes a parked wait.
        let head = kv.head()?;
        let task = crate::routes::tasks::load(&kv, id)?
            .ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))?;
        if task.state.is_terminal() {
            return Ok(crate::json_response(200, &job_view(&task)));
        }
        match wait.next(head, Interest::Subject(id.to_owned()), &claims) {
            Next::LookAgain => continue,
            Next::Park(answer) => return Ok(answer),
            Next::Answer => {
                return Ok(crate::json_response(
                    200,
                    &json!({ "status": "pending", "message": "Still running" }),
                ))
            }
        }
    }
}

/// `GET /api/admin/celery/queues/stats`.
pub fn queue_stats(req: &Req) -> Result<Response, ApiError> {
    crate::auth::admin(req)?;
    let kv = Kv::open()?;
    let body = json!({
        "queues": crate::routes::workers::queues(&kv)?,
        "workers": crate::routes::workers::all(&kv)?.len(),
        "timestamp": vigil_core::time::iso8601(crate::clock::secs()),
    });
    Ok(crate::json_response(200, &body))
}

/// `GET /api/admin/celery/workers`: a JSON array.
pub fn workers(req: &Req) -> Result<Response, ApiError> {
    crate::auth::admin(req)?;
    Ok(crate::json_response(
        200,
        &Value::Array(crate::routes::workers::all(&Kv::open()?)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_uuid_v4() {
        let id = new_id().unwrap();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_id().unwrap());
    }

    #[test]
    fn finished_jobs_read_as_seed_000_says() {
        let mut t = Task::new("j");
        for (state, status) in [
            (TaskState::Success, "completed"),
            (TaskState::Failure, "failed"),
            (TaskState::Revoked, "revoked"),
            (TaskState::Started, "pending"),
        ] {
            t.state = state;
            let v = job_view(&t);
            assert_eq!(
                (v["job_id"].as_str(), v["status"].as_str()),
                (Some("j"), Some(status))
            );
        }
    }
}
