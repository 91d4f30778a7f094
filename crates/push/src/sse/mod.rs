//! `GET /events`: Server-Sent Events (seed 004). Each message carries `id: <seq>` and
//! `event: <name>`; heartbeats are comment lines.
//!
//! - A fresh connection starts with `connected`, then `initial_data`: the dashboard
//!   snapshot the token may see (`GET /api/v1/dashboard`), whose `id` is the snapshot's
//!   sequence number. Every `dashboard_interval` in which something changed, the same
//!   snapshot comes again as `dashboard_update`, followed by `resources_update` (its
//!   workers, queues and breakers).
//! - A client that reconnects with `Last-Event-ID` (or `?since=`) instead first gets what
//!   it missed (see [`super::resume`]), or `reset`.
//! - With `Accept-Encoding: gzip` the stream is gzip-compressed, flushed after every
//!   wake-up's messages so nothing waits in the compressor.
//! - A connection whose first request is `GET /events` is served on the connection
//!   itself, off the HTTP server ([`direct`]: one task, what the hub queues leaves with
//!   one `writev` per wake-up, the body delimited by the connection's end). A later
//!   request on a keep-alive connection goes through the HTTP server ([`events`]:
//!   `vigil_transport`'s [`SseBody`], one chunk per wake-up). Either way each payload's
//!   SSE message is made once for every connection, and heartbeats come from the hub's
//!   one timer; the connection only waits for the token's expiry and the next
//!   `dashboard_update` besides.
//! - When the token expires the stream ends with `auth-error`; the client reconnects
//!   with a fresh token and its `Last-Event-ID`, missing nothing.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::json;
use tokio::time::{Instant, Interval};
use vigil_core::error::ApiError;
use vigil_transport::stream::sse::SseBody;
use vigil_transport::wire;

use super::resume::{self, Catchup};
use super::{Authorized, PushQuery};
use crate::hub::{Queue, Subscription, Wire};
use crate::metrics::{ConnectionGuard, Metrics, Transport};
use crate::PushState;
use vigil_runtime::error::HttpError;

pub mod direct;

/// Where the snapshots come from.
const DASHBOARD_PATH: &str = "/api/v1/dashboard";

/// An SSE stream opened for a request: what it sends before the queue, and what lives
/// as long as it.
struct Opened {
    /// `connected`, then `initial_data` or what a resuming client missed (or `reset`).
    first: Vec<u8>,
    gzip: bool,
    /// Dropping it unsubscribes.
    sub: Subscription,
    guard: ConnectionGuard,
    auth: Authorized,
    /// The last sequence number the replay sent (0 without one).
    upto: u64,
}

/// Authenticates and subscribes a request; the refusal is the HTTP error to answer.
async fn open(
    app: &PushState,
    headers: &HeaderMap,
    query: &PushQuery,
) -> Result<Opened, HttpError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let auth = super::authenticate(header, query, app.verifier())?;
    let spec = super::spec(&auth.claims, query, false)?;
    let sub = app
        .hub()
        .subscribe(spec)
        .await
        .ok_or_else(|| ApiError::unavailable("the server is shutting down"))?;
    let guard = app.metrics().connected(Transport::Sse);
    let mut first = Vec::new();
    let hello = json!({ "subscriber": sub.id, "user": auth.claims.sub }).to_string();
    wire::sse::message(&mut first, "connected", None, hello.as_bytes());
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let mut upto = 0;
    if let Some(since) = resume::cursor(last_event_id, query.since) {
        match resume::catch_up(app, &sub, since).await {
            Ok(Catchup::Replay { frames, upto: head }) => {
                frames.iter().for_each(|p| first.extend_from_slice(p.sse()));
                upto = head;
            }
            Ok(Catchup::Reset { seq }) => {
                let reset = json!({ "seq": seq }).to_string();
                wire::sse::message(&mut first, "reset", None, reset.as_bytes());
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
                return Err(ApiError::unavailable("the event log is unavailable").into());
            }
        }
    } else if let Some(snapshot) = app.internal_get(DASHBOARD_PATH, &auth.token).await {
        snapshot_message(&mut first, "initial_data", &snapshot);
    }
    Ok(Opened {
        first,
        gzip: accepts_gzip(headers),
        sub,
        guard,
        auth,
        upto,
    })
}

/// `GET /events` through the HTTP server: a request that did not come first on its
/// connection (the first is served by [`direct`]), as a response body.
pub async fn events(
    State(app): State<PushState>,
    headers: HeaderMap,
    Query(query): Query<PushQuery>,
) -> Result<Response, HttpError> {
    let Opened {
        first,
        gzip,
        sub,
        guard,
        auth,
        upto,
    } = open(&app, &headers, &query).await?;
    let (queue, sent) = (sub.queue.clone(), sub.last_seq.clone());
    let watcher = tokio::spawn(watch(app, auth, queue, sent, upto));
    let body = SseBody::new(sub.queue.clone(), first.into(), gzip);
    let stream = Stream {
        body,
        _sub: sub,
        _guard: guard,
        watcher,
    };
    let mut resp = Response::builder();
    for (name, value) in response_headers(gzip) {
        resp = resp.header(name, value);
    }
    resp.body(Body::new(stream))
        .map_err(|e| ApiError::internal(format!("building the SSE response: {e}")).into())
}

/// The headers of an SSE response.
fn response_headers(gzip: bool) -> impl Iterator<Item = (&'static str, &'static str)> {
    [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
        ("vary", "accept-encoding"),
    ]
    .into_iter()
    .chain(gzip.then_some(("content-encoding", "gzip")))
}

/// Whether the client accepts a gzip-encoded body.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// One stream's body, and what lives as long as it: the subscription (dropping it
/// unsubscribes), the connection count, and the task watching expiry and snapshots.
struct Stream {
    body: SseBody,
    _sub: Subscription,
    _guard: ConnectionGuard,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }
}

/// A snapshot as `initial_data`/`dashboard_update`, its `id` the snapshot's `seq` so a
/// reconnect resumes right after it.
fn snapshot_message(out: &mut Vec<u8>, event: &str, snapshot: &serde_json::Value) {
    let seq = snapshot.get("seq").and_then(serde_json::Value::as_u64);
    wire::sse::message(out, event, seq, snapshot.to_string().as_bytes());
}

/// Seed 004's `resources_update`: the health part of a snapshot (workers, queues,
/// breakers), for clients that do not want the whole dashboard.
fn resources(snapshot: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for key in ["seq", "workers", "queues", "breakers", "timestamp"] {
        if let Some(v) = snapshot.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    serde_json::Value::Object(out)
}

/// Until the stream ends: ends it with `auth-error` when the token expires (SSE cannot
/// refresh), and queues a `dashboard_update` and `resources_update` every
/// `dashboard_interval` in which something was sent after the last snapshot.
async fn watch(
    app: PushState,
    auth: Authorized,
    queue: Arc<Queue>,
    sent: Arc<AtomicU64>,
    upto: u64,
) {
    let every = app.push().dashboard_interval;
    let mut dashboard =
        (every > Duration::ZERO).then(|| tokio::time::interval_at(Instant::now() + every, every));
    let expiry = tokio::time::sleep_until(auth.deadline());
    tokio::pin!(expiry);
    let mut snapshot_seq = upto;
    loop {
        tokio::select! {
            () = &mut expiry => return expire(&app, &queue),
            _ = tick(&mut dashboard) => {
                let sent = sent.load(Ordering::Relaxed).max(upto);
                if sent <= snapshot_seq {
                    continue;
                }
                if let Some(snapshot) = app.internal_get(DASHBOARD_PATH, &auth.token).await {
                    snapshot_seq = sent;
                    let mut out = Vec::new();
                    snapshot_message(&mut out, "dashboard_update", &snapshot);
                    snapshot_message(&mut out, "resources_update", &resources(&snapshot));
                    let _ = queue.push_control(Wire::Raw(out.into()));
                }
            }
        }
    }
}

/// The token ran out: `auth-error`, then the end of the stream.
fn expire(app: &PushState, queue: &Queue) {
    Metrics::inc(&app.metrics().expired);
    let body = super::auth_error(&super::token_expired()).to_string();
    let mut out = Vec::new();
    wire::sse::message(&mut out, "auth-error", None, body.as_bytes());
    let end = Wire::End {
        ns: 0,
        code: 0,
        reason: "".into(), // the auth-error said why
    };
    if queue
        .push_all_control([Wire::Raw(out.into()), end])
        .is_err()
    {
        queue.close("token expired");
    }
}

/// Ticks `interval`, or never when there is none.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_chosen_by_accept_encoding() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            http::header::ACCEPT_ENCODING,
            "br, gzip;q=0.8".parse().unwrap(),
        );
        assert!(accepts_gzip(&h));
        h.insert(http::header::ACCEPT_ENCODING, "gzip;q=0".parse().unwrap());
        assert!(!accepts_gzip(&h));
    }
}
