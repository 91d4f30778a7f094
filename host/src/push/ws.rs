//! `GET /ws`: the native WebSocket. The server sends each event as one message (JSON
//! text, or MessagePack binary with `?encoding=msgpack`); the client may send
//! `{"type":"ping","timestamp":…}` and gets `{"type":"pong","timestamp":…}` back.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use http::HeaderMap;
use serde_json::{json, Value};
use vigil_core::error::ApiError;

use super::resume::Catchup;
use super::PushQuery;
use crate::error::HttpError;
use crate::hub::{Outgoing, Spec, Subscription};
use crate::server::AppState;

/// Largest message a client may send; client messages are small control messages.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Close code for "the server ended this subscription" (application range).
const CLOSE_SUBSCRIPTION_ENDED: u16 = 4000;

/// Authenticates, then upgrades.
pub async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PushQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, HttpError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = super::authenticate(header, &query, app.secret())?;
    let spec = super::spec(&claims, &query, true)?;
    let ws = ws.map_err(|e| ApiError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, app, spec, query.since)))
}

async fn serve(mut socket: WebSocket, app: AppState, spec: Spec, since: Option<u64>) {
    let Some(mut sub) = app.hub().subscribe(spec).await else {
        return;
    };
    let hello = json!({ "type": "connected", "subscriber": sub.id }).to_string();
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let Some(upto) = catch_up(&mut socket, &app, &sub, since).await else {
        return;
    };
    let every = app.push().heartbeat;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            msg = sub.rx.recv() => match msg {
                Some(msg) if msg.seq <= upto => {} // already replayed
                Some(msg) => if socket.send(to_message(&msg)).await.is_err() { return },
                None => return close(socket, &sub).await,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if socket.send(Message::Text(reply(&text).into())).await.is_err() { return }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // pings are answered by the library; binary is ignored
            },
            _ = heartbeat.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() { return }
            }
        }
    }
}

/// Sends what a resuming client missed (or a `reset`); returns the sequence number up
/// to which live messages are duplicates, or `None` if the socket is gone.
async fn catch_up(
    socket: &mut WebSocket,
    app: &AppState,
    sub: &Subscription,
    since: Option<u64>,
) -> Option<u64> {
    let Some(since) = since else { return Some(0) };
    match super::resume::catch_up(app.kv(), app.hub(), sub, since).await {
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
        Message::Binary(msg.frame.bytes.clone().into())
    } else {
        Message::Text(Utf8Bytes::from(
            String::from_utf8_lossy(&msg.frame.bytes).into_owned(),
        ))
    }
}

/// The answer to a client message.
fn reply(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return json!({ "type": "error", "error": "malformed JSON" }).to_string();
    };
    match v.get("type").and_then(Value::as_str) {
        Some("ping") => json!({ "type": "pong", "timestamp": v.get("timestamp") }).to_string(),
        Some(other) => {
            json!({ "type": "error", "error": format!("unknown message type `{other}`") })
                .to_string()
        }
        None => json!({ "type": "error", "error": "message needs a `type`" }).to_string(),
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
    fn answers_ping_and_refuses_the_rest_clearly() {
        let pong: Value = serde_json::from_str(&reply(r#"{"type":"ping","timestamp":5}"#)).unwrap();
        assert_eq!(pong, json!({ "type": "pong", "timestamp": 5 }));
        let e: Value = serde_json::from_str(&reply("{oops")).unwrap();
        assert_eq!(e["type"], "error");
        let e: Value = serde_json::from_str(&reply(r#"{"type":"dance"}"#)).unwrap();
        assert!(e["error"].as_str().unwrap().contains("dance"));
    }
}
