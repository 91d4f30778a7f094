//! `GET /api/v1/tasks` (Flower-like filters), `GET /api/v1/jobs` and
//! `GET /api/v1/tasks/{id}`, answered from the indexes (`vigil_store::listing`).

use serde_json::{json, Value};
use spin_sdk::http::Response;
use vigil_core::auth::{Claims, Role};
use vigil_core::error::ApiError;
use vigil_core::history::History;
use vigil_core::keys;
use vigil_core::task::{Task, TaskState};
use vigil_store::listing::{self, Listing, Request, MAX_OFFSET};
use vigil_store::query::{Cursor, Filters, Sort};
use vigil_store::record::Stored;
use vigil_store::sets::SORT_FIELDS;

use crate::request::Req;
use crate::store::{api_error, Kv};

/// Tasks listed when the client gives no `limit`.
const DEFAULT_LIMIT: u64 = 100;
/// Most tasks one response lists.
const MAX_LIMIT: u64 = 1000;

/// Whether `claims` may see a task of `owner`: admins see all, viewers their own.
pub fn may_see(claims: &Claims, owner: Option<&str>) -> bool {
    vigil_rules::may_see(claims.sees(), owner, None)
}

/// Whether `claims` may see `task`.
pub fn visible(claims: &Claims, task: &Task) -> bool {
    may_see(claims, task.owner.as_deref())
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

fn filters(req: &Req, jobs: bool) -> Result<Filters, ApiError> {
    let state = match req.query_param("state") {
        Some(s) => Some(
            TaskState::parse(&s)
                .ok_or_else(|| ApiError::invalid_field("state", format!("unknown state `{s}`")))?,
        ),
        None => None,
    };
    Ok(Filters {
        state,
        queue: req.query_param("queue"),
        worker: req.query_param("worker"),
        name: req.query_param("name"),
        owner: req.query_param("owner"),
        jobs,
        search: req.query_param("search").map(|s| s.to_lowercase()),
        received_after: parse_f64(req, "received_after")?,
        received_before: parse_f64(req, "received_before")?,
    })
}

fn sort(req: &Req) -> Result<Sort, ApiError> {
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
    Ok(Sort { field, desc })
}

/// The listing `req` asks for; `None` when a viewer filters by another owner (nothing
/// it may see).
pub fn request(
    req: &Req,
    claims: Option<&Claims>,
    jobs: bool,
) -> Result<Option<Request>, ApiError> {
    let mut filters = filters(req, jobs)?;
    let sort = sort(req)?;
    let limit = req.query_u64("limit", 1..=MAX_LIMIT, DEFAULT_LIMIT)? as usize;
    let offset = req.query_u64("offset", 0..=MAX_OFFSET as u64, 0)? as usize;
    let cursor = match req.query_param("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            Cursor::decode(&c)
                .filter(|c| c.sort == sort)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "cursor",
                        "cursor is not one this listing returned (same sort_by)",
                    )
                })?,
        ),
    };
    if let Some(c) = claims.filter(|c| c.role != Role::Admin) {
        if filters.owner.as_ref().is_some_and(|o| *o != c.sub) {
            return Ok(None);
        }
        filters.owner = Some(c.sub.clone());
    }
    Ok(Some(Request {
        filters,
        sort,
        limit,
        offset,
        cursor,
    }))
}

/// The tasks `req`'s filters select, sorted and paged (only those `claims` may see).
pub fn query(req: &Req, claims: Option<&Claims>, jobs: bool) -> Result<Listing, ApiError> {
    let Some(r) = request(req, claims, jobs)? else {
        return Ok(Listing {
            tasks: Vec::new(),
            total: 0,
            total_exact: true,
            next: None,
        });
    };
    listing::list(&Kv::open()?, &r).map_err(api_error)
}

fn page(l: &Listing, field: &str) -> Value {
    let tasks: Vec<Value> = l.tasks.iter().map(Task::view).collect();
    json!({
        field: tasks,
        "total": l.total,
        "total_exact": l.total_exact,
        "next_cursor": l.next.as_ref().map(Cursor::encode),
    })
}

/// `GET /api/v1/tasks`: `{"tasks":[…],"total":n,"total_exact":b,"next_cursor":c}`.
pub fn list(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    let l = query(req, Some(&claims), false)?;
    Ok(crate::json_response(200, &page(&l, "tasks")))
}

/// `GET /api/v1/jobs`: the tasks that are jobs, with the same filters and paging.
pub fn jobs(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    let l = query(req, Some(&claims), true)?;
    Ok(crate::json_response(200, &page(&l, "jobs")))
}

/// What `task/{id}` holds, if anything.
fn stored(kv: &Kv, id: &str) -> Result<Option<Stored>, ApiError> {
    let key = keys::task(id);
    vigil_store::kv::Kv::get(kv, &key)
        .map_err(api_error)?
        .map(|b| Stored::decode(&key, &b))
        .transpose()
        .map_err(api_error)
}

/// The live task `id`, if Vigil holds it.
pub fn load(kv: &Kv, id: &str) -> Result<Option<Task>, ApiError> {
    Ok(stored(kv, id)?.and_then(|s| s.task))
}

/// The task `id` if `req`'s caller may see it; else 404: unknown, not the caller's (no
/// existence leak), or expired by the retention policy (saying so).
fn visible_task(req: &Req, kv: &Kv, id: &str) -> Result<Task, ApiError> {
    let claims = crate::auth::reader(req)?;
    match stored(kv, id)? {
        Some(Stored { task: Some(t), .. }) if visible(&claims, &t) => Ok(t),
        Some(Stored {
            expired: Some(x), ..
        }) if may_see(&claims, x.owner.as_deref()) => Err(ApiError::not_found(format!(
            "task `{id}` expired at {} by the retention policy: {} (it finished at {})",
            vigil_core::time::iso8601(x.at),
            x.reason,
            vigil_core::time::iso8601(x.done_at)
        ))),
        _ => Err(super::retention::unknown_task(id)),
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
    use crate::request::tests::req;
    use spin_sdk::http::Method;

    fn parse(q: &str, claims: Option<&Claims>) -> Result<Option<Request>, ApiError> {
        request(
            &req(Method::Get, &format!("/api/v1/tasks?{q}"), ""),
            claims,
            false,
        )
    }

    #[test]
    fn filters_sort_and_paging_are_read_and_checked() {
        let r = parse(
            "state=success&queue=q&sort_by=-runtime&limit=5&offset=10",
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.filters.state, Some(TaskState::Success));
        assert_eq!((r.sort.field.as_str(), r.sort.desc), ("runtime", true));
        assert_eq!((r.limit, r.offset), (5, 10));
        assert_eq!(parse("sort_by=color", None).unwrap_err().status, 422);
        assert_eq!(parse("offset=10001", None).unwrap_err().status, 422);
        assert_eq!(parse("state=DONE", None).unwrap_err().status, 422);
    }

    #[test]
    fn a_cursor_belongs_to_its_order() {
        let c = Cursor {
            sort: Sort {
                field: "state_at".into(),
                desc: true,
            },
            name: None,
            key: 5.0,
            id: "a".into(),
        };
        let ok = parse(&format!("cursor={}", c.encode()), None)
            .unwrap()
            .unwrap();
        assert_eq!(ok.cursor, Some(c.clone()));
        let other = parse(&format!("cursor={}&sort_by=received_at", c.encode()), None);
        assert_eq!(other.unwrap_err().field.as_deref(), Some("cursor"));
    }

    #[test]
    fn viewers_list_their_own_tasks_only() {
        let bob = Claims::new("bob", Role::Viewer, 0, 0);
        let r = parse("", Some(&bob)).unwrap().unwrap();
        assert_eq!(r.filters.owner.as_deref(), Some("bob"));
        assert!(parse("owner=alice", Some(&bob)).unwrap().is_none());
    }
}
