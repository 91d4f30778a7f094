//! `GET /ws`: the native WebSocket. The server sends each event as one message (JSON
//! text, or MessagePack binary with `?encoding=msgpack`); its own control messages
//! (`connected`, `reset`, `degraded`, `auth-error`, answers) are always JSON text.
//!
//! The client may send (each answered; an `"id"` in the request is echoed in the answer):
//! - `{"type":"ping","timestamp":t}` → `{"type":"pong","timestamp":t}`
//! - `{"type":"subscribe","topics":[…],"queues":[…],"states":[…],"ids":[…]}` →
//!   `{"type":"subscribed",…}`: replaces the connection's filter
//! - `{"type":"refresh","token":"…"}` → `{"type":"refreshed","exp":…,"role":…}`: a fresh
//!   token for the same user keeps the connection past the old one's expiry
//! - anything else → `{"type":"error","code":…,"error":"…"}`; the connection stays.
//!
//! When the token expires: `{"type":"auth-error","code":"token_expired",…}`, then close
//! code 4001. Resume with `?since=<seq>`.
//!
//! The connection is `vigil_transport`'s WebSocket driver on the upgraded stream: what
//! the hub queues leaves with one `writev` per wake-up; pings come from the hub's one
//! heartbeat timer, and a client that answers none for [`MISSED_HEARTBEATS`] is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use vigil_core::error::ApiError;
use vigil_transport::conn::framing::{Framing, WebSocket};
use vigil_transport::conn::writer::with_gather;
use vigil_transport::eio::websocket::accept_key;
use vigil_transport::stream::websocket::{self as driver, Config, Messages};

use super::resume::Catchup;
use super::{Authorized, PushQuery};
use crate::hub::{Queue, Subscription, Wire};
use crate::metrics::{Metrics, Transport};
use crate::PushState;
use vigil_runtime::error::HttpError;

/// Largest message a client may send; client messages are small control messages.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Close code for "the token expired": reconnect with a fresh one and `?since=`.
const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Most values in one filter list of a `subscribe` message.
const MAX_FILTER_VALUES: usize = 64;
/// Heartbeats a client may leave unanswered (no pong, no message) before it counts as
/// not reading: two, so one lost in a busy moment is forgiven.
const MISSED_HEARTBEATS: u32 = 2;

/// Authenticates, then upgrades.
pub async fn upgrade(
    State(app): State<PushState>,
    headers: HeaderMap,
    Query(query): Query<PushQuery>,
    mut req: Request,
) -> Result<Response, HttpError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let auth = super::authenticate(header, &query, app.verifier())?;
    super::spec(&auth.claims, &query, true)?; // refuse bad filters before upgrading
    let key = websocket_key(&headers)
        .map_err(|e| ApiError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded), app, auth, query).await,
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(key.as_bytes()))
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::internal(format!("building the upgrade: {e}")).into())
}

/// The client's `Sec-WebSocket-Key`, if the request is a WebSocket upgrade (RFC 6455).
fn websocket_key(headers: &HeaderMap) -> Result<String, &'static str> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err("`Connection: upgrade` and `Upgrade: websocket` headers needed");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err("`Sec-WebSocket-Version: 13` needed");
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or("`Sec-WebSocket-Key` header needed")
}

async fn serve(
    io: TokioIo<hyper::upgrade::Upgraded>,
    app: PushState,
    auth: Authorized,
    query: PushQuery,
) {
    let Ok(spec) = super::spec(&auth.claims, &query, true) else {
        return;
    };
    let Some(sub) = app.hub().subscribe(spec).await else {
        return;
    };
    let _guard = app.metrics().connected(Transport::WebSocket);
    let Some(first) = first_frames(&app, &sub, query.since).await else {
        return;
    };
    let (deadline, at) = watch::channel(auth.deadline());
    let watcher = tokio::spawn(watch_expiry(app.clone(), sub.queue.clone(), at));
    let config = Config {
        missed: MISSED_HEARTBEATS,
        max_message: MAX_CLIENT_MESSAGE,
    };
    let session = Session {
        app,
        auth,
        query,
        id: sub.id,
        queue: sub.queue.clone(),
        deadline,
    };
    let why = driver::run(io, &first, sub.queue.clone(), session, config).await;
    watcher.abort();
    tracing::debug!(subscriber = sub.id, why, "WebSocket connection ended");
}

/// `connected`, then what a resuming client missed (or a `reset`), as WebSocket frames;
/// `None` if the log cannot be read.
async fn first_frames(app: &PushState, sub: &Subscription, since: Option<u64>) -> Option<Vec<u8>> {
    let hello = json!({ "type": "connected", "subscriber": sub.id }).to_string();
    let mut first = vec![Wire::Text(hello.into())];
    if let Some(since) = since {
        match super::resume::catch_up(app, sub, since).await {
            Ok(Catchup::Replay { frames, .. }) => {
                first.extend(
                    frames
                        .into_iter()
                        .map(|payload| Wire::Payload { ns: 0, payload }),
                );
            }
            Ok(Catchup::Reset { seq }) => {
                let reset = json!({ "type": "reset", "seq": seq }).to_string();
                first.push(Wire::Text(reset.into()));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
                return None;
            }
        }
    }
    Some(with_gather(|g| {
        first.iter().for_each(|m| WebSocket.frame(m, g));
        g.concat()
    }))
}

/// Ends the connection when its token expires; a refresh moves the deadline.
async fn watch_expiry(app: PushState, queue: Arc<Queue>, mut deadline: watch::Receiver<Instant>) {
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep_until(at) => return expire(&app, &queue),
            changed = deadline.changed() => if changed.is_err() { return },
        }
    }
}

/// The token ran out: `auth-error`, then close (code 4001).
fn expire(app: &PushState, queue: &Queue) {
    Metrics::inc(&app.metrics().expired);
    let mut body = super::auth_error(&super::token_expired());
    body["type"] = json!("auth-error");
    let end = Wire::End {
        ns: 0,
        code: CLOSE_TOKEN_EXPIRED,
        reason: "token expired".into(),
    };
    if queue
        .push_all_control([Wire::Text(body.to_string().into()), end])
        .is_err()
    {
        queue.close("token expired");
    }
}

/// What one connection knows about itself between client messages.
struct Session {
    app: PushState,
    auth: Authorized,
    /// The filters it connected with, kept so a role change can rebuild them.
    query: PushQuery,
    id: u64,
    queue: Arc<Queue>,
    /// Tells the expiry watcher when a refresh moved the deadline.
    deadline: watch::Sender<Instant>,
}

impl Messages for Session {
    fn text(mut self, text: Bytes) -> Pin<Box<dyn Future<Output = Self> + Send>> {
        Box::pin(async move {
            let answer = self.handle(&text).await.to_string();
            self.deadline.send_if_modified(|at| {
                let next = self.auth.deadline();
                std::mem::replace(at, next) != next
            });
            if self.queue.push_control(Wire::Text(answer.into())).is_err() {
                self.queue.close("slow consumer: answers are not read");
            }
            self
        })
    }
}

impl Session {
    /// The answer to one client message; `id`, when the client sent one, is echoed so
    /// the client can match answers to requests (its acknowledgement).
    async fn handle(&mut self, text: &[u8]) -> Value {
        let Ok(msg) = serde_json::from_slice::<Value>(text) else {
            return error(None, &ApiError::bad_request("malformed JSON"));
        };
        let id = msg.get("id").cloned();
        let answer = match msg.get("type").and_then(Value::as_str) {
            Some("ping") => Ok(json!({ "type": "pong", "timestamp": msg.get("timestamp") })),
            Some("subscribe") => self.subscribe(&msg).await,
            Some("refresh") => self.refresh(&msg).await,
            Some(other) => Err(ApiError::bad_request(format!(
                "unknown message type `{other}` (ping, subscribe, refresh)"
            ))),
            None => Err(ApiError::bad_request("message needs a `type`")),
        };
        match answer {
            Ok(mut v) => {
                if let (Some(obj), Some(id)) = (v.as_object_mut(), id) {
                    obj.insert("id".into(), id);
                }
                v
            }
            Err(e) => error(id, &e),
        }
    }

    /// `{"type":"subscribe","topics":[…],"queues":[…],"states":[…],"ids":[…]}` replaces
    /// the filter; once answered, every later event is decided with the new one.
    async fn subscribe(&mut self, msg: &Value) -> Result<Value, ApiError> {
        let mut query = PushQuery {
            encoding: self.query.encoding.clone(),
            ..PushQuery::default()
        };
        for (field, slot) in [
            ("topics", &mut query.topics),
            ("queues", &mut query.queues),
            ("states", &mut query.states),
            ("ids", &mut query.ids),
        ] {
            *slot = string_list(msg, field)?;
        }
        let spec = super::spec(&self.auth.claims, &query, true).map_err(|e| e.0)?;
        let Some(f) = spec.filter else {
            return Err(ApiError::internal("no filter"));
        };
        if !self.app.hub().update_filter(self.id, Some(f.clone())).await {
            return Err(ApiError::unavailable("the subscription has ended"));
        }
        self.query = query;
        Ok(json!({
            "type": "subscribed",
            "topics": f.topics, "queues": f.queues, "states": f.states, "ids": f.keys,
        }))
    }

    /// `{"type":"refresh","token":…}`: keeps the connection alive past the old token's
    /// expiry; a changed role changes what it receives from now on.
    async fn refresh(&mut self, msg: &Value) -> Result<Value, ApiError> {
        let token = msg
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_field("token", "expected the new token"))?;
        let next = self.auth.refresh(token, self.app.verifier())?;
        if next.claims.role != self.auth.claims.role {
            let spec = super::spec(&next.claims, &self.query, true).map_err(|e| e.0)?;
            if !self.app.hub().update_filter(self.id, spec.filter).await {
                return Err(ApiError::unavailable("the subscription has ended"));
            }
        }
        self.auth = next;
        Ok(json!({
            "type": "refreshed",
            "exp": self.auth.claims.exp,
            "role": self.auth.claims.role.as_str(),
        }))
    }
}

/// A comma-joined list from a JSON array of strings (at most [`MAX_FILTER_VALUES`]).
fn string_list(msg: &Value, field: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = msg.get(field) else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .filter(|a| a.len() <= MAX_FILTER_VALUES)
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .filter(|a| a.iter().all(|s| !s.contains(',')))
        .ok_or_else(|| {
            ApiError::invalid_field(
                field,
                format!("expected an array of at most {MAX_FILTER_VALUES} strings"),
            )
        })?;
    Ok(Some(items.join(",")))
}

fn error(id: Option<Value>, e: &ApiError) -> Value {
    let mut v = json!({ "type": "error", "code": e.code, "error": e.message });
    if let (Some(obj), Some(id)) = (v.as_object_mut(), id) {
        obj.insert("id".into(), id);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_lists_must_be_short_arrays_of_strings() {
        let ok = json!({ "topics": ["celery:tasks", "workers"] });
        assert_eq!(
            string_list(&ok, "topics").unwrap().as_deref(),
            Some("celery:tasks,workers")
        );
        assert_eq!(string_list(&ok, "queues").unwrap(), None);
        for bad in [
            json!({ "topics": "x" }),
            json!({ "topics": [1] }),
            json!({ "topics": ["a,b"] }),
        ] {
            assert_eq!(
                string_list(&bad, "topics").unwrap_err().code,
                "invalid_field"
            );
        }
        let many: Vec<String> = (0..=MAX_FILTER_VALUES).map(|i| i.to_string()).collect();
        assert!(string_list(&json!({ "ids": many }), "ids").is_err());
    }

    #[test]
    fn errors_echo_the_request_id() {
        let e = error(Some(json!(7)), &ApiError::bad_request("nope"));
        assert_eq!(
            e,
            json!({ "type": "error", "code": "bad_request", "error": "nope", "id": 7 })
        );
    }
}
