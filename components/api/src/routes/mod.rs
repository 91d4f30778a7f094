//! Routing: path and method to handler.

mod health;
mod ingest;
mod tasks;

use spin_sdk::http::{Method, Response};
use vigil_core::error::ApiError;

use crate::request::Req;

/// Runs the handler for `req`'s path and method.
pub fn route(req: &Req) -> Result<Response, ApiError> {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (segments.as_slice(), &req.method) {
        (["health"], Method::Get) => Ok(health::get()),
        (["api", "v1", "events"], Method::Post) => ingest::post(req),
        (["api", "v1", "tasks"], Method::Get) => tasks::list(req),
        (["api", "v1", "tasks", id], Method::Get) => tasks::get(req, id),
        (["health"], _) | (["api", "v1", "events"], _) | (["api", "v1", "tasks", ..], _) => Err(
            ApiError::method_not_allowed(format!("{} is not allowed on {}", req.method, req.path)),
        ),
        _ => Err(ApiError::not_found(format!("no route for {}", req.path))),
    }
}
