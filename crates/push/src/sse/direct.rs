//! `GET /events` served on the connection itself, off the HTTP server: the host hands
//! over a connection whose first request is a plain `GET /events` (see
//! `vigil_transport::wire::http::sniff`), already parsed. One task per connection:
//! the response head written directly, then `vigil_transport`'s SSE driver (one
//! `writev` per wake-up) alongside the token-expiry and snapshot watch; the body is
//! delimited by the connection's end (`Connection: close`), so every SSE message's bytes
//! are the same for every connection. An idle stream holds no HTTP server state: no
//! read buffer, no response body, no second task.
//!
//! A refusal is the same JSON error, with the same status, as through the HTTP server,
//! and closes the connection.

use axum::extract::Query;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use vigil_core::error::ApiError;
use vigil_runtime::error::HttpError;
use vigil_transport::stream::sse::run;
use vigil_transport::wire::http::{date_line, Head};

use super::{open, response_headers, watch, Opened};
use crate::{PushQuery, PushState};

/// The path served this way.
pub const PATH: &str = "/events";

/// Serves `head` (a `GET` of [`PATH`], the connection's first request) on `io` until
/// the stream ends or the client goes away.
pub async fn serve<IO: AsyncRead + AsyncWrite + Unpin>(app: PushState, mut io: IO, head: Head) {
    let opened = match Query::<PushQuery>::try_from_uri(&head.uri) {
        Ok(Query(query)) => open(&app, &head.headers, &query).await,
        Err(e) => Err(HttpError(ApiError::from_status(400, e.body_text()))),
    };
    drop(head);
    let Opened {
        first,
        gzip,
        sub,
        guard,
        auth,
        upto,
    } = match opened {
        Ok(opened) => opened,
        Err(refusal) => {
            let _ = io.write_all(&refusal_bytes(&refusal.0)).await;
            let _ = io.shutdown().await;
            return;
        }
    };
    let (queue, sent) = (sub.queue.clone(), sub.last_seq.clone());
    let watcher = async move {
        watch(app, auth, queue, sent, upto).await;
        // Expiry queued the stream's end: the stream finishes it.
        std::future::pending::<()>().await;
    };
    let stream = run(
        io,
        response_head(gzip),
        first.into(),
        sub.queue.clone(),
        gzip,
    );
    tokio::select! {
        () = stream => {}
        () = watcher => {}
    }
    drop((sub, guard));
}

/// The response head: `200`, the SSE headers, and `Connection: close` (the body ends
/// with the connection).
fn response_head(gzip: bool) -> Bytes {
    let mut head = String::from("HTTP/1.1 200 OK\r\n") + &date_line();
    for (name, value) in response_headers(gzip) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    head.into()
}

/// A refusal as a whole response: its status, the JSON error body.
fn refusal_bytes(e: &ApiError) -> Vec<u8> {
    let status =
        http::StatusCode::from_u16(e.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = e.to_json();
    format!(
        "HTTP/1.1 {} {}\r\n{}content-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        date_line(),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_says_event_stream_and_close() {
        let head = String::from_utf8(response_head(true).to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("content-type: text/event-stream\r\n"));
        assert!(head.contains("content-encoding: gzip\r\n"));
        assert!(head.ends_with("connection: close\r\n\r\n"));
        assert_has_date(&head);
        let plain = String::from_utf8(response_head(false).to_vec()).unwrap();
        assert!(!plain.contains("content-encoding"));
    }

    #[test]
    fn a_refusal_keeps_its_status_and_json_body() {
        let e = ApiError::unavailable("the server is shutting down");
        let text = String::from_utf8(refusal_bytes(&e)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["message"], "the server is shutting down");
        assert_has_date(head);
    }

    /// A `date` header of now, in HTTP's format.
    fn assert_has_date(head: &str) {
        let date = head
            .lines()
            .find_map(|l| l.strip_prefix("date: "))
            .unwrap_or_else(|| panic!("no date in {head:?}"));
        let at = httpdate::parse_http_date(date).unwrap();
        let age = std::time::SystemTime::now().duration_since(at).unwrap();
        assert!(age.as_secs() < 5, "{date}");
    }
}
