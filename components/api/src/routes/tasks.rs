//! `GET /api/v1/tasks` (Flower-like filters) and `GET /api/v1/tasks/{id}`.

use spin_sdk::http::Response;
use vigil_core::auth::{Claims, Role};
use vigil_core::error::ApiError;
use vigil_core::keys;
use vigil_core::task::{Task, TaskState};

use crate::request::Req;
use crate::store::Kv;

/// Tasks listed when the client gives no `limit`.
const DEFAULT_LIMIT: u64 = 100;
/// Most tasks one response lists.
const MAX_LIMIT: u64 = 1000;
/// Fields `sort_by` accepts (prefix `-` for descending).
const SORT_FIELDS: [&str; 6] = [
    "state_at",
    "received_at",
    "started_at",
    "finished_at",
    "runtime",
    "name",
];

/// Whether `claims` may see `task`: admins see all, viewers their own.
pub fn visible(claims: &Claims, task: &Task) -> bool {
    claims.role == Role::Admin || task.owner.as_deref() == Some(claims.sub.as_str())
}

fn parse_f64(req: &Req, name: &str) -> Result<Option<f64>, ApiError> {
    req.query_param(name)
        .map(|v| {
            // `NaN` and `inf` parse as f64 but are no time: every comparison with them is false.
            v.parse::<f64>()
                .ok()
                .filter(|t| t.is_finite())
                .ok_or_else(|| {
                    ApiError::invalid_field(name, format!("{name} must be seconds since the epoch"))
                })
        })
        .transpose()
}

/// The tasks `req`'s filters select, sorted and paged (only those `claims` may see).
pub fn query(req: &Req, claims: Option<&Claims>) -> Result<Vec<Task>, ApiError> {
    Ok(select(req, claims, false)?.1)
}

/// (total matching, the page).
fn select(
    req: &Req,
    claims: Option<&Claims>,
    jobs_only: bool,
) -> Result<(usize, Vec<Task>), ApiError> {
    let state = match req.query_param("state") {
        Some(s) => Some(
            TaskState::parse(&s)
                .ok_or_else(|| ApiError::invalid_field("state", format!("unknown state `{s}`")))?,
        ),
        None => None,
    };
    let (queue, worker, name, owner) = (
        req.query_param("queue"),
        req.query_param("worker"),
        req.query_param("name"),
        req.query_param("owner"),
    );
    let search = req.query_param("search").map(|s| s.to_lowercase());
    let (after, before) = (
        parse_f64(req, "received_after")?,
        parse_f64(req, "received_before")?,
    );
    let limit = req.query_u64("limit", 1..=MAX_LIMIT, DEFAULT_LIMIT)? as usize;
    let offset = req.query_u64("offset", 0..=u64::MAX, 0)? as usize;
    let sort = req
        .query_param("sort_by")
        .unwrap_or_else(|| "-state_at".into());
    let (desc, field) = match sort.strip_prefix('-') {
        Some(f) => (true, f.to_owned()),
        None => (false, sort.clone()),
    };
    if !SORT_FIELDS.contains(&field.as_str()) {
        return Err(ApiError::invalid_field(
            "sort_by",
            format!("sort_by must be one of {SORT_FIELDS:?}, optionally with `-`"),
        ));
    }
    let eq = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    let mut tasks: Vec<Task> = Kv::open()?
        .all::<Task>(keys::TASK_PREFIX)?
        .into_iter()
        .filter(|t| claims.is_none_or(|c| visible(c, t)))
        .filter(|t| !jobs_only || is_job(t))
        .filter(|t| state.is_none_or(|s| t.state == s))
        .filter(|t| {
            eq(&queue, &t.queue)
                && eq(&worker, &t.worker)
                && eq(&name, &t.name)
                && eq(&owner, &t.owner)
        })
        .filter(|t| after.is_none_or(|a| t.received_at.is_some_and(|r| r >= a)))
        .filter(|t| before.is_none_or(|b| t.received_at.is_some_and(|r| r < b)))
        .filter(|t| search.as_ref().is_none_or(|s| matches_search(t, s)))
        .collect();
    tasks.sort_by(|a, b| {
        let o = sort_key(a, &field)
            .partial_cmp(&sort_key(b, &field))
            .unwrap_or(std::cmp::Ordering::Equal);
        (if desc { o.reverse() } else { o }).then_with(|| a.id.cmp(&b.id))
    });
    let total = tasks.len();
    Ok((total, tasks.into_iter().skip(offset).take(limit).collect()))
}

#[derive(PartialEq, PartialOrd)]
enum Key<'a> {
    Num(f64),
    Text(&'a str),
}

fn sort_key<'a>(t: &'a Task, field: &str) -> Key<'a> {
    let n = |v: Option<f64>| Key::Num(v.unwrap_or(f64::MIN));
    match field {
        "received_at" => n(t.received_at),
        "started_at" => n(t.started_at),
        "finished_at" => n(t.finished_at),
        "runtime" => n(t.runtime),
        "name" => Key::Text(t.name.as_deref().unwrap_or("")),
        _ => Key::Num(t.state_at),
    }
}

/// Case-insensitive search over id, name, args, kwargs, result and exception.
fn matches_search(t: &Task, needle: &str) -> bool {
    let text = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string().to_lowercase());
    [
        Some(t.id.to_lowercase()),
        t.name.as_ref().map(|s| s.to_lowercase()),
        text(&t.args),
        text(&t.kwargs),
        text(&t.result),
        t.exception.as_ref().map(|s| s.to_lowercase()),
    ]
    .into_iter()
    .flatten()
    .any(|h| h.contains(needle))
}

/// `GET /api/v1/tasks`: `{"tasks":[…],"total":n}`.
pub fn list(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    let (total, tasks) = select(req, Some(&claims), false)?;
    let tasks: Vec<serde_json::Value> = tasks.iter().map(Task::view).collect();
    Ok(crate::json_response(
        200,
        &serde_json::json!({ "tasks": tasks, "total": total }),
    ))
}

/// Whether a task is a job: submitted through the jobs API, or reporting batches.
fn is_job(t: &Task) -> bool {
    t.total_batches.is_some() || t.extra.get("job") == Some(&serde_json::Value::Bool(true))
}

/// `GET /api/v1/jobs`: the tasks that are jobs, with the same filters as tasks.
pub fn jobs(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    let (_, all) = select(req, Some(&claims), true)?;
    let jobs: Vec<serde_json::Value> = all.iter().map(Task::view).collect();
    Ok(crate::json_response(
        200,
        &serde_json::json!({ "jobs": jobs, "total": jobs.len() }),
    ))
}

/// One task, or 404 (also for a task the caller may not see: no existence leak).
pub fn get(req: &Req, id: &str) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    match Kv::open()?.get::<Task>(&keys::task(id))? {
        Some(task) if visible(&claims, &task) => Ok(crate::json_response(200, &task.view())),
        _ => Err(ApiError::not_found(format!("no task `{id}`"))),
    }
}
