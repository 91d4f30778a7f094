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
//!   message so nothing waits in the compressor.
//! - When the token expires the stream ends with `auth-error`; the client reconnects
//!   with a fresh token and its `Last-Event-ID`, missing nothing.

use std::io::Write;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures::stream::{self, StreamExt};
use http::HeaderMap;
use serde_json::json;
use tokio::time::{Instant, Interval};
use vigil_core::error::ApiError;

use super::resume::{self, Catchup};
use super::{Authorized, PushQuery};
use crate::hub::{Outgoing, Subscription};
use crate::metrics::{ConnectionGuard, Metrics, Transport};
use crate::PushState;
use vigil_runtime::error::HttpError;

/// Where the snapshots come from.
const DASHBOARD_PATH: &str = "/api/v1/dashboard";

/// Opens an SSE stream for a reader.
pub async fn events(
    State(app): State<PushState>,
    headers: HeaderMap,
    Query(query): Query<PushQuery>,
) -> Result<Response, HttpError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let auth = super::authenticate(header, &query, app.verifier())?;
    let spec = super::spec(&auth.claims, &query, false)?;
    let sub = app
        .hub()
        .subscribe(spec)
        .await
        .ok_or_else(|| ApiError::unavailable("the server is shutting down"))?;
    let guard = app.metrics().connected(Transport::Sse);
    let mut first = vec![message(
        "connected",
        None,
        &json!({ "subscriber": sub.id, "user": auth.claims.sub }).to_string(),
    )];
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let mut upto = 0;
    if let Some(since) = resume::cursor(last_event_id, query.since) {
        match resume::catch_up(&app, &sub, since).await {
            Ok(Catchup::Replay { frames, upto: head }) => {
                first.extend(frames.iter().map(to_message));
                upto = head;
            }
            Ok(Catchup::Reset { seq }) => {
                first.push(message("reset", None, &json!({ "seq": seq }).to_string()));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
                return Err(ApiError::unavailable("the event log is unavailable").into());
            }
        }
    } else if let Some(snapshot) = app.internal_get(DASHBOARD_PATH, &auth.token).await {
        first.push(snapshot_message("initial_data", &snapshot));
    }
    let gzip = accepts_gzip(&headers);
    let conn = Connection::new(app, auth, sub, upto, guard);
    let head = stream::iter(first);
    let body = head
        .chain(conn.into_stream())
        .scan(gzip.then(Gzip::new), |gz, text| {
            let bytes = match gz {
                Some(gz) => gz.compress(text.as_bytes()),
                None => Bytes::from(text),
            };
            std::future::ready(Some(Ok::<_, std::io::Error>(bytes)))
        });
    let mut resp = Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .header(http::header::VARY, "accept-encoding");
    if gzip {
        resp = resp.header(http::header::CONTENT_ENCODING, "gzip");
    }
    resp.body(Body::from_stream(body))
        .map_err(|e| ApiError::internal(format!("building the SSE response: {e}")).into())
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

/// A gzip stream flushed after every message (a sync flush: the client can decode
/// everything received so far).
struct Gzip(GzEncoder<Vec<u8>>);

impl Gzip {
    fn new() -> Self {
        Self(GzEncoder::new(Vec::new(), Compression::fast()))
    }

    fn compress(&mut self, text: &[u8]) -> Bytes {
        if let Err(e) = self.0.write_all(text).and_then(|()| self.0.flush()) {
            tracing::error!(error = %e, "gzip failed");
        }
        Bytes::from(std::mem::take(self.0.get_mut()))
    }
}

/// One SSE message. Data lines are split on newlines, as the format requires.
fn message(event: &str, id: Option<u64>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + event.len() + 32);
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

fn to_message(msg: &Outgoing) -> String {
    // Host-made markers have no sequence number: no `id`, so Last-Event-ID stays put.
    let id = (msg.seq != 0).then_some(msg.seq);
    message(&msg.kind, id, &String::from_utf8_lossy(&msg.frame.bytes))
}

/// A snapshot as `initial_data`/`dashboard_update`, its `id` the snapshot's `seq` so a
/// reconnect resumes right after it.
fn snapshot_message(event: &str, snapshot: &serde_json::Value) -> String {
    let seq = snapshot.get("seq").and_then(serde_json::Value::as_u64);
    message(event, seq, &snapshot.to_string())
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

/// The live part of one stream.
struct Connection {
    app: PushState,
    auth: Authorized,
    sub: Subscription,
    /// Live messages up to here were replayed already.
    upto: u64,
    /// Newest sequence number sent, to know whether a `dashboard_update` is due.
    sent_seq: u64,
    snapshot_seq: u64,
    heartbeat: Interval,
    dashboard: Option<Interval>,
    /// Fires when the token expires; SSE cannot refresh, so it is armed once.
    expiry: std::pin::Pin<Box<tokio::time::Sleep>>,
    _guard: ConnectionGuard,
    done: bool,
}

impl Connection {
    fn new(
        app: PushState,
        auth: Authorized,
        sub: Subscription,
        upto: u64,
        guard: ConnectionGuard,
    ) -> Self {
        let push = app.push();
        let every = push.heartbeat;
        let heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        let dashboard = (push.dashboard_interval > Duration::ZERO).then(|| {
            let d = push.dashboard_interval;
            tokio::time::interval_at(Instant::now() + d, d)
        });
        Self {
            expiry: Box::pin(tokio::time::sleep_until(auth.deadline())),
            app,
            auth,
            sub,
            upto,
            sent_seq: upto,
            snapshot_seq: upto,
            heartbeat,
            dashboard,
            _guard: guard,
            done: false,
        }
    }

    fn into_stream(self) -> impl futures::Stream<Item = String> + Send {
        stream::unfold(self, |mut conn| async move {
            let text = conn.next().await?;
            Some((text, conn))
        })
    }

    /// The next text to write; `None` ends the stream.
    async fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                msg = self.sub.rx.recv() => match msg {
                    Some(msg) if super::replayed(msg.seq, self.upto) => {}
                    Some(msg) => {
                        self.sent_seq = self.sent_seq.max(msg.seq);
                        return Some(to_message(&msg));
                    }
                    None => {
                        self.done = true;
                        let reason = self.sub.closed.get().cloned()
                            .unwrap_or_else(|| "server closed".into());
                        return Some(message("disconnect", None, &json!({ "reason": reason }).to_string()));
                    }
                },
                () = &mut self.expiry => {
                    self.done = true;
                    Metrics::inc(&self.app.metrics().expired);
                    let e = super::token_expired();
                    return Some(message("auth-error", None, &super::auth_error(&e).to_string()));
                }
                _ = self.heartbeat.tick() => return Some(": keep-alive\n\n".to_owned()),
                _ = tick(&mut self.dashboard) => {
                    if self.sent_seq > self.snapshot_seq {
                        if let Some(snapshot) = self.app.internal_get(DASHBOARD_PATH, &self.auth.token).await {
                            self.snapshot_seq = self.sent_seq;
                            let mut text = snapshot_message("dashboard_update", &snapshot);
                            text.push_str(&snapshot_message("resources_update", &resources(&snapshot)));
                            return Some(text);
                        }
                    }
                }
            }
        }
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
    fn messages_split_data_lines_and_omit_missing_ids() {
        assert_eq!(
            message("task_update", Some(7), "{\"a\":1}"),
            "id: 7\nevent: task_update\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(message("x", None, "a\nb"), "event: x\ndata: a\ndata: b\n\n");
    }

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

    #[test]
    fn every_gzip_chunk_decodes_on_its_own_so_far() {
        use std::io::Read;
        let mut gz = Gzip::new();
        let mut all = Vec::new();
        all.extend_from_slice(&gz.compress(b"event: a\ndata: 1\n\n"));
        let mut out = Vec::new();
        // A sync flush makes everything so far decodable before the stream ends.
        let mut d = flate2::read::GzDecoder::new(&all[..]);
        let _ = d.read_to_end(&mut out);
        assert_eq!(out, b"event: a\ndata: 1\n\n");
    }
}
