//! `GET /health`: the component answers.

use spin_sdk::http::Response;

pub fn get() -> Response {
    crate::json_response(200, &serde_json::json!({ "status": "ok" }))
}
