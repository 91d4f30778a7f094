//! Routing: path and method to handler.

mod admin;
mod breaker;
mod dashboard;
mod feed;
mod health;
pub mod ingest;
mod metrics;
mod records;
mod retention;
pub mod tasks;
mod wait;
pub mod workers;

use spin_sdk::http::{Method, Response};
use vigil_core::error::ApiError;

use crate::request::Req;

/// The OpenAPI document of this API; `tests/openapi.rs` checks real responses against it.
const OPENAPI: &str = include_str!("../../openapi/openapi.json");

fn openapi() -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(OPENAPI)
        .build()
}

/// The path's segments, each percent-decoded, so `tasks/a%2Fb` names the task `a/b`
/// (see [`vigil_core::ids`]); 400 for a segment that is not valid percent-encoded UTF-8.
fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            vigil_core::ids::decode_segment(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "path segment `{s}` is not valid percent-encoded UTF-8"
                ))
            })
        })
        .collect()
}

/// Runs the handler for `req`'s path and method.
pub fn route(req: &Req) -> Result<Response, ApiError> {
    let owned = segments(&req.path)?;
    let segments: Vec<&str> = owned.iter().map(String::as_str).collect();
    let get = matches!(req.method, Method::Get);
    let post = matches!(req.method, Method::Post);
    let wrong_method = || {
        Err(ApiError::method_not_allowed(format!(
            "{} is not allowed on {}",
            req.method, req.path
        )))
    };
    match segments.as_slice() {
        ["health"] if get => Ok(health::get()),
        ["api", "v1", "openapi.json"] if get => Ok(openapi()),
        ["api", "v1", "events"] if post => ingest::post(req),
        ["api", "v1", "events"] if get => feed::get(req),
        ["api", "v1", "tasks"] if get => tasks::list(req),
        ["api", "v1", "tasks", "expire"] if post => retention::run(req),
        ["api", "v1", "tasks", id] if get => tasks::get(req, id),
        ["api", "v1", "tasks", id, "revoke"] if post => admin::revoke(req, id),
        ["api", "v1", "tasks", id, "events"] if get => tasks::events(req, id),
        ["api", "v1", "workers"] if get => workers::list(req),
        ["api", "v1", "jobs"] if get => tasks::jobs(req),
        ["api", "v1", "workers", "sweep"] if post => workers::sweep(req),
        ["api", "v1", "workers", id] if get => workers::get(req, id),
        ["api", "v1", "workers", id, "control"] if post => workers::control(req, id),
        ["api", "v1", "queues"] if get => workers::list_queues(req),
        ["api", "v1", "dashboard"] if get => dashboard::get(req),
        ["api", "v1", "metrics", "system"] if get => metrics::get(req),
        ["api", "v1", "queue", "circuit-breaker-status"] if get => breaker::status(req),
        ["api", "v1", "queue", "open-circuit-breaker"] if post => breaker::set(req, true),
        ["api", "v1", "queue", "close-circuit-breaker"] if post => breaker::set(req, false),
        ["api", "admin", "celery", "tasks"] if get => admin::tasks(req),
        ["api", "admin", "celery", "tasks", id, "revoke"] if post => admin::revoke(req, id),
        ["api", "admin", "celery", "jobs", name] if post => admin::submit(req, name),
        ["api", "admin", "celery", "jobs", id, "wait"] if get => admin::wait(req, id),
        ["api", "admin", "celery", "queues", "stats"] if get => admin::queue_stats(req),
        ["api", "admin", "celery", "workers"] if get => admin::workers(req),
        ["api", "auth", "refresh"] if post => crate::auth::refresh(req),
        ["health"]
        | ["api", "v1", "events" | "tasks" | "jobs" | "workers" | "queues" | "dashboard"]
        | ["api", "v1", "metrics", "system"]
        | ["api", "v1", "tasks" | "workers", _]
        | ["api", "v1", "tasks", _, "revoke" | "events"]
        | ["api", "v1", "workers", _, "control"]
        | ["api", "v1", "queue", "circuit-breaker-status" | "open-circuit-breaker" | "close-circuit-breaker"]
        | ["api", "admin", "celery", "tasks" | "workers"]
        | ["api", "admin", "celery", "tasks", _, "revoke"]
        | ["api", "admin", "celery", "jobs", _]
        | ["api", "admin", "celery", "jobs", _, "wait"]
        | ["api", "admin", "celery", "queues", "stats"]
        | ["api", "auth", "refresh"] => wrong_method(),
        _ => Err(ApiError::not_found(format!("no route for {}", req.path))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::req;

    fn status(method: Method, path: &str) -> u16 {
        match route(&req(method, path, "")) {
            Ok(r) => *r.status(),
            Err(e) => e.status,
        }
    }

    #[test]
    fn unknown_paths_are_404_and_known_ones_with_another_method_405() {
        assert_eq!(status(Method::Get, "/health"), 200);
        assert_eq!(status(Method::Get, "/api/v1/openapi.json"), 200);
        assert_eq!(status(Method::Get, "/api/v1/nope"), 404);
        assert_eq!(status(Method::Get, "/api/v1/tasks/a/b/c"), 404);
        for path in [
            "/health",
            "/api/v1/tasks/x/revoke",
            "/api/v1/tasks/x/events",
            "/api/v1/workers/w/control",
            "/api/admin/celery/jobs/x/wait",
        ] {
            let other = if path.ends_with("revoke") || path.ends_with("control") {
                Method::Get
            } else {
                Method::Delete
            };
            assert_eq!(status(other, path), 405, "{path}");
        }
    }

    #[test]
    fn the_openapi_document_is_json_and_lists_the_new_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for path in ["/api/v1/tasks/{id}/events", "/api/v1/workers/{id}/control"] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
        }
    }
}
