//! One JSON error shape for every refusal the host itself makes — a method a route does
//! not take (405), a query string that does not parse (400), a body, URI or header
//! section past its limit (413, 414, 431), no capacity (503) — as the components do.
//!
//! [`json_refusals`] wraps the whole app: it refuses over-long URIs and header sections
//! itself, and rewrites any other error response that is not JSON yet (axum's and the
//! Socket.IO layer's plain-text or empty ones) into `{"error":{…}}`, keeping the status
//! and, as the message, what the original body said.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use vigil_core::error::ApiError;
use vigil_runtime::error::HttpError;

/// Longest request URI (path and query) accepted: far more than any Vigil URL needs
/// (a filter of a thousand ids fits), far less than hyper's own hard limit (64 KiB),
/// so the refusal is ours and JSON.
pub const MAX_URI_BYTES: usize = 16 * 1024;

/// Largest header section accepted (names and values): room for long tokens and
/// cookies, well under hyper's own limit (~400 KiB), so the refusal is ours and JSON.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most of an original plain-text error body kept as the message.
const MAX_MESSAGE_BYTES: usize = 1024;

/// The middleware: the host's limits, then JSON for every error response.
pub async fn json_refusals(req: Request, next: Next) -> Response {
    if let Some(refusal) = over_limits(&req) {
        return HttpError(refusal).into_response_inner();
    }
    let resp = next.run(req).await;
    if resp.status().as_u16() < 400 || is_json(&resp) {
        return resp;
    }
    to_json(resp).await
}

fn over_limits(req: &Request) -> Option<ApiError> {
    let uri = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        let msg = format!("the request URI is longer than {MAX_URI_BYTES} bytes");
        return Some(ApiError::from_status(414, msg));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        let msg = format!("the request headers are larger than {MAX_HEADER_BYTES} bytes");
        return Some(ApiError::from_status(431, msg));
    }
    None
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `resp` as the JSON error shape, its status and (short) text kept.
async fn to_json(resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match (text.is_empty(), status.canonical_reason()) {
        (false, _) => text,
        (true, Some(reason)) => reason.to_lowercase(),
        (true, None) => format!("refused with status {}", status.as_u16()),
    };
    let mut out = HttpError(ApiError::from_status(status.as_u16(), message)).into_response_inner();
    // Keep what the refusal told the client to do (Allow on 405, Retry-After on 429/503).
    for name in [http::header::ALLOW, http::header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[tokio::test]
    async fn plain_and_empty_refusals_become_the_json_shape() {
        let plain = Response::builder()
            .status(400)
            .header("content-type", "text/plain")
            .body(Body::from(
                "Failed to deserialize query string: since: invalid digit",
            ))
            .unwrap();
        let body = axum::body::to_bytes(to_json(plain).await.into_body(), 4096)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["status"], 400);
        assert_eq!(v["error"]["code"], "bad_request");
        assert!(v["error"]["message"].as_str().unwrap().contains("since"));

        let empty = Response::builder()
            .status(405)
            .header("allow", "GET,HEAD")
            .body(Body::empty())
            .unwrap();
        let out = to_json(empty).await;
        assert_eq!(out.headers()["allow"], "GET,HEAD");
        let body = axum::body::to_bytes(out.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "method_not_allowed");
    }

    #[test]
    fn long_uris_and_header_sections_are_refused() {
        let long = format!("/api/v1/tasks?q={}", "x".repeat(MAX_URI_BYTES));
        let req = Request::get(long).body(Body::empty()).unwrap();
        assert_eq!(over_limits(&req).unwrap().status, 414);
        let req = Request::get("/")
            .header("x-big", "y".repeat(MAX_HEADER_BYTES))
            .body(Body::empty())
            .unwrap();
        assert_eq!(over_limits(&req).unwrap().status, 431);
        let req = Request::get("/health").body(Body::empty()).unwrap();
        assert!(over_limits(&req).is_none());
    }
}
