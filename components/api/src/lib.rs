//! Vigil's REST API as a Spin HTTP component.
//!
//! Stateless between requests: every task record and every published event lives in
//! the Spin key-value store `default` (layout in [`vigil_core::keys`]). Runs the same
//! under `spin up` and under Vigil's own host.
//!
//! - [`request`]: reading the request (bounded body, headers, query).
//! - [`auth`]: checking the bearer token against the `jwt_secret` variable.
//! - [`store`]: task records and the outbox in the key-value store.
//! - [`routes`]: one module per resource.

// The `#[http_component]` macro generates the component's exported ABI glue.
#![allow(unsafe_code)]

mod auth;
mod clock;
mod request;
mod routes;
mod store;

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;
use vigil_core::error::ApiError;

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    let result = match request::Req::read(req).await {
        Ok(req) => routes::route(&req),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

/// The one error body, with its status.
pub(crate) fn error_response(e: &ApiError) -> Response {
    Response::builder()
        .status(e.status)
        .header("content-type", "application/json")
        .body(e.to_json())
        .build()
}
