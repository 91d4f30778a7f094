//! `GET /api/v1/tasks` (Flower-like filters) and `GET /api/v1/tasks/{id}`.

use spin_sdk::http::Response;
use vigil_core::auth::{Claims, Role};
use vigil_core::error::ApiError;
use vigil_core::history::History;
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

/// The task `id` if `req`'s caller may see it, else 404 (no existence leak).
fn visible_task(req: &Req, kv: &Kv, id: &str) -> Result<Task, ApiError> {
    let claims = crate::auth::reader(req)?;
    match kv.get::<Task>(&keys::task(id))? {
        Some(task) if visible(&claims, &task) => Ok(task),
        _ => Err(ApiError::not_found(format!("no task `{id}`"))),
    }
}

/// `GET /api/v1/tasks/{id}`: the record (with its attempts) and `children`, the ids
/// of the tasks it sent.
pub fn get(req: &Req, id: &str) -> Result<Response, ApiError> {
    let kv = Kv::open()?;
    let task = visible_task(req, &kv, id)?;
    let children: Vec<String> = kv.get(&keys::children(id))?.unwrap_or_default();
    let mut view = task.view();
    view["children"] = serde_json::json!(children);
    Ok(crate::json_response(200, &view))
}

/// `GET /api/v1/tasks/{id}/events`: every event recorded about the task, in time
/// order, each with all its fields: `{"task_id","events":[…],"dropped":n}`.
pub fn events(req: &Req, id: &str) -> Result<Response, ApiError> {
    let kv = Kv::open()?;
    visible_task(req, &kv, id)?;
    let history: History = kv.get(&keys::history(id))?.unwrap_or_default();
    Ok(crate::json_response(
        200,
        &serde_json::json!({ "task_id": id, "events": history.events, "dropped": history.dropped }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, name: &str, runtime: Option<f64>) -> Task {
        let mut t = Task::new(id);
        t.name = Some(name.into());
        t.runtime = runtime;
        t.args = Some(serde_json::json!("('Report-42',)"));
        t
    }

    #[test]
    fn search_looks_at_id_name_and_arguments_case_insensitively() {
        let t = task("ABC-1", "reports.Build", None);
        assert!(matches_search(&t, "abc"));
        assert!(matches_search(&t, "reports.build"));
        assert!(matches_search(&t, "report-42"));
        assert!(!matches_search(&t, "emails"));
    }

    #[test]
    fn sort_keys_order_numbers_and_names_with_unknowns_first() {
        let (a, b) = (task("a", "x", Some(2.0)), task("b", "y", None));
        assert!(sort_key(&b, "runtime") < sort_key(&a, "runtime"));
        assert!(sort_key(&a, "name") < sort_key(&b, "name"));
    }

    #[test]
    fn jobs_are_submitted_tasks_or_batch_reporters() {
        let mut t = task("a", "x", None);
        assert!(!is_job(&t));
        t.extra.insert("job".into(), serde_json::Value::Bool(true));
        assert!(is_job(&t));
        let mut b = task("b", "x", None);
        b.total_batches = Some(3);
        assert!(is_job(&b));
    }
}
