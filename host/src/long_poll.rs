//! Long-polls (the event feed, seed 000's job wait) served on the connection itself,
//! off the HTTP server, so that a parked long-poll holds only its socket, its request
//! and its place in the parking lot: no HTTP server connection, no read or write
//! buffers (issue 14; a hyper connection costs ~16 KiB however idle).
//!
//! The request goes through the same router as through the HTTP server (the host's
//! limits, the rate limit, the components, parking), so its answer is the same; only
//! reading the head and writing the answer are done here. While the answer is awaited
//! the socket is watched: a client that hangs up drops the request (and frees its
//! place in the lot); bytes it sends meanwhile (a pipelined next request) are kept, up
//! to [`MAX_HEAD`], for after the answer.

use std::io;
use std::net::SocketAddr;

use axum::body::{Body, HttpBody as _};
use axum::extract::ConnectInfo;
use axum::response::Response;
use axum::Router;
use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::ServiceExt;
use vigil_transport::wire::http::{Head, MAX_HEAD};

use crate::write_timeout::WriteTimeout;

/// Prefix of the components' API routes: only their long-polls are taken (the host's
/// own routes and the dashboard's always go to the HTTP server).
const API_PREFIX: &str = "/api/";

/// Most of an answer's body written together with its head in one write.
const COALESCE_BYTES: usize = 64 * 1024;

/// Bytes read at a time from a client while its request waits (bytes it sent after
/// the head, or its end).
const PIPELINED_READ: usize = 1024;

/// Whether the `GET` of `target` (path and query, as sent) is a long-poll served here.
pub fn takes(target: &str) -> bool {
    target.starts_with(API_PREFIX)
        && target
            .parse::<http::Uri>()
            .is_ok_and(|uri| vigil_runtime::http::is_long_poll(&http::Method::GET, &uri))
}

/// Serves the long-poll `head` from `client` on `io` with `router`; `rest` is what the
/// client sent after the head. The connection's next bytes (for its next request) if it
/// stays open: not when the client or the answer says `close`, once `closing` (the
/// server is shutting down), or when the client went away.
pub async fn serve(
    router: Router,
    client: SocketAddr,
    io: &mut WriteTimeout,
    head: Head,
    mut rest: BytesMut,
    closing: &watch::Receiver<bool>,
) -> Option<BytesMut> {
    let close_asked = says_close(&head.headers);
    let call = router.oneshot(request(head, client));
    let mut call = std::pin::pin!(call);
    let resp = loop {
        tokio::select! {
            resp = &mut call => break resp.unwrap_or_else(|never| match never {}),
            gone = read_more(io.tcp(), &mut rest), if rest.len() < MAX_HEAD => {
                if gone {
                    return None;
                }
            }
        }
    };
    let close = close_asked || *closing.borrow() || says_close(resp.headers());
    write(io, resp, close).await.ok()?;
    (!close).then_some(rest)
}

/// The request the router is given: what the HTTP server would give it.
fn request(head: Head, client: SocketAddr) -> http::Request<Body> {
    let mut req = http::Request::new(Body::empty());
    *req.uri_mut() = head.uri;
    *req.headers_mut() = head.headers;
    req.extensions_mut().insert(ConnectInfo(client));
    req
}

/// Whether a `Connection` header says `close`.
fn says_close(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

/// Waits for `tcp` to send something: true when it has gone away (end or error), false
/// when bytes came (added to `rest`). No buffer is held while waiting.
async fn read_more(tcp: &TcpStream, rest: &mut BytesMut) -> bool {
    if tcp.readable().await.is_err() {
        return true;
    }
    let mut chunk = [0u8; PIPELINED_READ];
    let room = (MAX_HEAD - rest.len()).min(PIPELINED_READ);
    match tcp.try_read(&mut chunk[..room]) {
        Ok(0) => true,
        Ok(n) => {
            rest.extend_from_slice(&chunk[..n]);
            false
        }
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

/// Writes `resp` as an HTTP/1.1 response; `close`: says so, and the caller closes.
async fn write(io: &mut WriteTimeout, resp: Response, close: bool) -> io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    // These statuses never have a body (RFC 9110 §6.4.1).
    let bodiless = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    let length = body.size_hint().exact();
    let mut out = response_head(&parts, (!bodiless).then_some(length), close);
    if bodiless {
        io.write_all(&out).await?;
        return io.flush().await;
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not sent
        };
        if data.is_empty() {
            continue;
        }
        if length.is_none() {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        }
        if out.len() + data.len() <= COALESCE_BYTES {
            out.extend_from_slice(&data);
        } else {
            io.write_all(&out).await?;
            out.clear();
            io.write_all(&data).await?;
        }
        if length.is_none() {
            out.extend_from_slice(b"\r\n");
        }
    }
    if length.is_none() {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    io.write_all(&out).await?;
    io.flush().await
}

/// Headers that describe the connection or the message's framing: this module sets
/// its own.
const HOP_BY_HOP: [http::HeaderName; 4] = [
    http::header::CONNECTION,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::HeaderName::from_static("keep-alive"),
];

/// The status line and headers: the answer's own, then its framing (`content-length`
/// when `length` is known, chunked when it is `Some(None)`, nothing for a bodiless
/// status), `date` unless the answer has one, and `connection: close` if `close`.
fn response_head(
    parts: &http::response::Parts,
    length: Option<Option<u64>>,
    close: bool,
) -> Vec<u8> {
    let status = parts.status;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in &parts.headers {
        if HOP_BY_HOP.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        Some(Some(n)) => out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        Some(None) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        None => {}
    }
    if !parts.headers.contains_key(http::header::DATE) {
        out.extend_from_slice(vigil_transport::wire::http::date_line().as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_components_long_polls_are_taken() {
        assert!(takes("/api/v1/events?since=3&timeout=60"));
        assert!(takes("/api/v1/events"));
        assert!(takes("/api/admin/celery/jobs/j1/wait?timeout=60"));
        assert!(takes("/api/admin/celery/jobs/j1/wait"));
        assert!(!takes("/api/v1/events?timeout=0"));
        assert!(!takes("/api/v1/tasks"));
        assert!(!takes("/events?timeout=60"));
        assert!(!takes("/socket.io/?EIO=4&transport=polling&timeout=5"));
        assert!(!takes("/metrics?timeout=5"));
    }

    #[test]
    fn connection_close_is_read_from_any_token() {
        let mut h = http::HeaderMap::new();
        assert!(!says_close(&h));
        h.insert("connection", "keep-alive".parse().unwrap());
        assert!(!says_close(&h));
        h.insert("connection", "TE, Close".parse().unwrap());
        assert!(says_close(&h));
    }

    fn head_of(resp: http::Response<()>, length: Option<Option<u64>>, close: bool) -> String {
        let (parts, ()) = resp.into_parts();
        String::from_utf8(response_head(&parts, length, close)).unwrap()
    }

    #[test]
    fn the_head_has_the_status_the_answers_headers_and_its_own_framing() {
        let resp = http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("content-length", "999")
            .header("connection", "upgrade")
            .body(())
            .unwrap();
        let head = head_of(resp, Some(Some(12)), false);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains("content-length: 12\r\n"), "{head}");
        assert!(!head.contains("999") && !head.contains("upgrade"), "{head}");
        assert!(
            head.contains("\r\ndate: ") && head.contains(" GMT\r\n"),
            "{head}"
        );
        assert!(!head.contains("connection:"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn close_chunked_and_bodiless_heads() {
        let resp = || http::Response::builder().status(503).body(()).unwrap();
        let head = head_of(resp(), Some(None), true);
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        assert!(head.ends_with("connection: close\r\n\r\n"));
        let head = head_of(resp(), None, false);
        assert!(!head.contains("content-length") && !head.contains("transfer-encoding"));
    }
}
