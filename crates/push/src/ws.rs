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

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use http::HeaderMap;
use serde_json::{json, Value};
use vigil_core::error::ApiError;

use super::resume::Catchup;
use super::{Authorized, PushQuery};
use crate::hub::{Outgoing, Subscription};
use crate::metrics::{Metrics, Transport};
use crate::PushState;
use vigil_runtime::error::HttpError;

/// Largest message a client may send; client messages are small control messages.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Close code for "the server ended this subscription" (application range).
const CLOSE_SUBSCRIPTION_ENDED: u16 = 4000;
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
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, HttpError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let auth = super::authenticate(header, &query, app.verifier())?;
    super::spec(&auth.claims, &query, true)?; // refuse bad filters before upgrading
    let ws = ws.map_err(|e| ApiError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, app, auth, query)))
}

async fn serve(mut socket: WebSocket, app: PushState, auth: Authorized, query: PushQuery) {
    let Ok(spec) = super::spec(&auth.claims, &query, true) else {
        return;
    };
    let Some(mut sub) = app.hub().subscribe(spec).await else {
        return;
    };
    let _guard = app.metrics().connected(Transport::WebSocket);
    let hello = json!({ "type": "connected", "subscriber": sub.id }).to_string();
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let Some(upto) = catch_up(&mut socket, &app, &sub, query.since).await else {
        return;
    };
    let mut conn = Session {
        app,
        auth,
        query,
        id: sub.id,
    };
    let every = conn.app.push().heartbeat;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // Anything the client sends (a pong included) shows it reads: a client silent for
    // MISSED_HEARTBEATS pings does not, and is closed (its socket then goes within the
    // write timeout, however full its buffers are).
    let mut heard = tokio::time::Instant::now();
    let expiry = tokio::time::sleep_until(conn.auth.deadline());
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            msg = sub.rx.recv() => match msg {
                Some(msg) if super::replayed(msg.seq, upto) => {}
                Some(msg) => if socket.send(to_message(&msg)).await.is_err() { return },
                None => return close(socket, &sub).await,
            },
            incoming = socket.recv() => {
              if matches!(incoming, Some(Ok(_))) {
                  heard = tokio::time::Instant::now();
              }
              match incoming {
                Some(Ok(Message::Text(text))) => {
                    let answer = conn.handle(&text).await.to_string();
                    expiry.as_mut().reset(conn.auth.deadline()); // a refresh may have moved it
                    if socket.send(Message::Text(answer.into())).await.is_err() { return }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // pings are answered by the library; binary is ignored
              }
            },
            () = &mut expiry => return expire(socket, &conn.app).await,
            _ = heartbeat.tick() => {
                if heard.elapsed() > every * MISSED_HEARTBEATS {
                    let reason = "slow consumer: no answer to heartbeats";
                    let frame = CloseFrame { code: CLOSE_SUBSCRIPTION_ENDED, reason: reason.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() { return }
            }
        }
    }
}

/// What one connection knows about itself between client messages.
struct Session {
    app: PushState,
    auth: Authorized,
    /// The filters it connected with, kept so a role change can rebuild them.
    query: PushQuery,
    id: u64,
}

impl Session {
    /// The answer to one client message; `id`, when the client sent one, is echoed so
    /// the client can match answers to requests (its acknowledgement).
    async fn handle(&mut self, text: &str) -> Value {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
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

/// The token ran out: `auth-error`, then close (code 4001).
async fn expire(mut socket: WebSocket, app: &PushState) {
    Metrics::inc(&app.metrics().expired);
    let e = super::token_expired();
    let mut body = super::auth_error(&e);
    body["type"] = json!("auth-error");
    let _ = socket.send(Message::Text(body.to_string().into())).await;
    let frame = CloseFrame {
        code: CLOSE_TOKEN_EXPIRED,
        reason: "token expired".into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Sends what a resuming client missed (or a `reset`); returns the sequence number up
/// to which live messages are duplicates, or `None` if the socket is gone.
async fn catch_up(
    socket: &mut WebSocket,
    app: &PushState,
    sub: &Subscription,
    since: Option<u64>,
) -> Option<u64> {
    let Some(since) = since else { return Some(0) };
    match super::resume::catch_up(app, sub, since).await {
        Ok(Catchup::Replay { frames, upto }) => {
            for f in &frames {
                socket.send(to_message(f)).await.ok()?;
            }
            Some(upto)
        }
        Ok(Catchup::Reset { seq }) => {
            let reset = json!({ "type": "reset", "seq": seq }).to_string();
            socket.send(Message::Text(reset.into())).await.ok()?;
            Some(0)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
            None
        }
    }
}

fn to_message(msg: &Outgoing) -> Message {
    if msg.frame.binary {
        Message::Binary(msg.frame.bytes.clone())
    } else {
        // The shared bytes, not a copy per connection; JSON frames are UTF-8.
        let text = Utf8Bytes::try_from(msg.frame.bytes.clone()).unwrap_or_else(|_| {
            Utf8Bytes::from(String::from_utf8_lossy(&msg.frame.bytes).into_owned())
        });
        Message::Text(text)
    }
}

async fn close(mut socket: WebSocket, sub: &Subscription) {
    let reason = sub
        .closed
        .get()
        .cloned()
        .unwrap_or_else(|| "server closed".into());
    let frame = CloseFrame {
        code: CLOSE_SUBSCRIPTION_ENDED,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
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
