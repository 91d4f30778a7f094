//! `GET /api/v1/tasks` and `GET /api/v1/tasks/{id}`.

use spin_sdk::http::Response;
use vigil_core::auth::{Claims, Role};
use vigil_core::error::ApiError;
use vigil_core::task::{Task, TaskState};

use crate::request::Req;
use crate::store::Kv;

/// Tasks listed when the client gives no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// Most tasks one response lists.
const MAX_LIMIT: usize = 1000;

/// Whether `claims` may see `task`: admins see all, viewers their own.
fn visible(claims: &Claims, task: &Task) -> bool {
    claims.role == Role::Admin || task.owner.as_deref() == Some(claims.sub.as_str())
}

/// Tasks, newest state change first, filtered by `state`, `queue`, and `limit`.
pub fn list(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    let state = match req.query_param("state") {
        Some(s) => Some(
            TaskState::parse(&s)
                .ok_or_else(|| ApiError::invalid_field("state", format!("unknown state `{s}`")))?,
        ),
        None => None,
    };
    let queue = req.query_param("queue");
    let limit = match req.query_param("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field("limit", format!("limit must be 1–{MAX_LIMIT}"))
            })?,
        None => DEFAULT_LIMIT,
    };
    let mut tasks: Vec<Task> = Kv::open()?
        .all_tasks()?
        .into_iter()
        .filter(|t| visible(&claims, t))
        .filter(|t| state.is_none_or(|s| t.state == s))
        .filter(|t| queue.as_ref().is_none_or(|q| t.queue.as_ref() == Some(q)))
        .collect();
    tasks.sort_by(|a, b| {
        b.state_at
            .total_cmp(&a.state_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let total = tasks.len();
    tasks.truncate(limit);
    Ok(crate::json_response(
        200,
        &serde_json::json!({ "tasks": tasks, "total": total }),
    ))
}

/// One task, or 404 (also for a task the caller may not see: no existence leak).
pub fn get(req: &Req, id: &str) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    match Kv::open()?.task(id)? {
        Some(task) if visible(&claims, &task) => Ok(crate::json_response(
            200,
            &serde_json::to_value(&task).unwrap_or_default(),
        )),
        _ => Err(ApiError::not_found(format!("no task `{id}`"))),
    }
}
