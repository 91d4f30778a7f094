//! Vigil's dashboard page as a Spin HTTP component: serves the embedded static files
//! under `/dashboard/` and redirects `/` there. All data comes from the REST API and
//! the push endpoints, fetched by the page itself with the user's token; this component
//! holds no state and opens no store.
//!
//! - [`assets`]: the embedded files and their validators.

// The `#[http_component]` macro generates the component's exported ABI glue.
#![allow(unsafe_code)]

mod assets;

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use vigil_core::error::ApiError;

/// Where the page lives; `/` and `/dashboard` redirect here (relative URLs need the slash).
const HOME: &str = "/dashboard/";

#[http_component]
fn handle(req: Request) -> Response {
    let head = *req.method() == Method::Head;
    if !head && *req.method() != Method::Get {
        return error(&ApiError::method_not_allowed(
            "the dashboard serves GET and HEAD only",
        ));
    }
    let Some(rest) = req.path().strip_prefix("/dashboard") else {
        return redirect();
    };
    if rest.is_empty() {
        return redirect();
    }
    let Some(asset) = assets::find(rest) else {
        return error(&ApiError::not_found(format!(
            "no dashboard file `{}`",
            rest.trim_start_matches('/')
        )));
    };
    let fresh = req
        .header("if-none-match")
        .is_some_and(|v| v.as_bytes() == asset.etag.as_bytes());
    let builder = &mut Response::builder();
    builder
        .header("content-type", asset.content_type)
        .header("etag", asset.etag)
        // Revalidate every time (cheap with the ETag): a new build shows at once.
        .header("cache-control", "no-cache")
        .header("x-content-type-options", "nosniff");
    if fresh {
        return builder.status(304).build();
    }
    let body = if head {
        Vec::new()
    } else {
        asset.body.to_vec()
    };
    builder.status(200).body(body).build()
}

/// `302` to the page, keeping nothing of the request (the token travels in the fragment,
/// which browsers keep across redirects by themselves).
fn redirect() -> Response {
    Response::builder()
        .status(302)
        .header("location", HOME)
        .header("content-type", "application/json")
        .body(format!("{{\"location\":\"{HOME}\"}}"))
        .build()
}

/// The one JSON error body, with its status.
fn error(e: &ApiError) -> Response {
    Response::builder()
        .status(e.status)
        .header("content-type", "application/json")
        .body(e.to_json())
        .build()
}
