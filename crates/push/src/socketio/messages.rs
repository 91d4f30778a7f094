//! What a Socket.IO client may emit: `subscribe`/`unsubscribe {room}` and
//! `ping {timestamp}` (seeds 000/001); `subscribe-admin`, `unsubscribe-admin` and
//! `request-system-metrics` (seed 003, admins); `refresh {token}` (a fresh token keeps
//! the socket past the old one's expiry). Anything else, or a payload without what it
//! needs, is answered with an error in the acknowledgement (if the client asked for one)
//! and otherwise ignored: a client's mistake never ends its connection. A request its
//! role may not make also gets `auth-error` (seed 003).

use std::sync::Arc;

use serde_json::{json, Value};
use vigil_core::auth::Role;
use vigil_core::error::ApiError;
use vigil_transport::eio::{AckSender, Event, SocketRef};

use super::rooms::RoomError;
use super::socket::{Socket, AUTH_ERROR_EVENT};
use crate::PushState;

/// Seed 003's admin-only system metrics event.
pub const SYSTEM_METRICS_EVENT: &str = "system-metrics";
/// Where the host reads them, as the socket's user.
const SYSTEM_METRICS_PATH: &str = "/api/v1/metrics/system";

/// Handles one event a client emitted.
pub async fn handle(app: &PushState, s: SocketRef, socket: Arc<Socket>, e: Event) {
    let data = e.args.into_iter().next();
    let ack = e.ack;
    match e.name.as_str() {
        "subscribe" => change_room(&s, &socket, data, ack, true).await,
        "unsubscribe" => change_room(&s, &socket, data, ack, false).await,
        "ping" => ping(&s, data, ack),
        "subscribe-admin" => admin_events(&s, &socket, ack, app, true).await,
        "unsubscribe-admin" => admin_events(&s, &socket, ack, app, false).await,
        "request-system-metrics" => request_system_metrics(&s, &socket, ack, app).await,
        "refresh" => refresh(&s, &socket, data, ack, app).await,
        other => {
            tracing::debug!(event = other, "unknown Socket.IO event");
            reply(ack, &Err(format!("unknown event `{other}`")));
        }
    }
}

/// `Ok` if the socket's user is an admin; otherwise `auth-error` and `Err`.
fn admin_only(s: &SocketRef, socket: &Socket, what: &str) -> Result<(), RoomError> {
    if socket.auth().claims.role == Role::Admin {
        return Ok(());
    }
    let e = ApiError::forbidden(format!("{what} needs role admin"));
    let _ = s.emit(AUTH_ERROR_EVENT, &crate::auth_error(&e));
    Err(e.message)
}

/// `subscribe-admin` / `unsubscribe-admin`: admin metrics on or off; on, the current
/// metrics follow at once.
async fn admin_events(
    s: &SocketRef,
    socket: &Socket,
    ack: Option<AckSender>,
    app: &PushState,
    on: bool,
) {
    let result = match admin_only(s, socket, "subscribe-admin") {
        Ok(()) => socket.admin_events(on).await,
        Err(e) => Err(e),
    };
    reply(
        ack,
        &result
            .clone()
            .map(|()| json!({ "room": vigil_core::event::METRICS_TOPIC })),
    );
    if on && result.is_ok() {
        let _ = send_system_metrics(s, socket, app).await;
    }
}

async fn request_system_metrics(
    s: &SocketRef,
    socket: &Socket,
    ack: Option<AckSender>,
    app: &PushState,
) {
    let result = match admin_only(s, socket, "request-system-metrics") {
        Ok(()) => send_system_metrics(s, socket, app).await,
        Err(e) => Err(e),
    };
    reply(ack, &result.map(|()| json!({})));
}

/// Reads the system metrics as the socket's user and emits them.
async fn send_system_metrics(
    s: &SocketRef,
    socket: &Socket,
    app: &PushState,
) -> Result<(), RoomError> {
    let metrics = app
        .internal_get(SYSTEM_METRICS_PATH, &socket.auth().token)
        .await
        .ok_or("system metrics are unavailable")?;
    s.emit(SYSTEM_METRICS_EVENT, &metrics)
        .map_err(|_| "could not send: the connection is not keeping up".to_owned())
}

/// `refresh {token}`: a fresh token for the same user. On the admin namespace a token
/// that is no longer admin ends the socket with `auth-error` (after the ack).
async fn refresh(
    s: &SocketRef,
    socket: &Socket,
    data: Option<Value>,
    ack: Option<AckSender>,
    app: &PushState,
) {
    let token = data.and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned));
    let (result, end) = match token {
        None => (Err(r#"expected {"token": "<jwt>"}"#.to_owned()), false),
        Some(token) => match socket.auth().refresh(&token, app.verifier()) {
            Err(e) => {
                let _ = s.emit(AUTH_ERROR_EVENT, &crate::auth_error(&e));
                (Err(e.message), false)
            }
            Ok(next) if s.ns() == super::ADMIN_NAMESPACE && next.claims.role != Role::Admin => {
                let e = ApiError::forbidden(format!(
                    "namespace {} needs role admin",
                    super::ADMIN_NAMESPACE
                ));
                let _ = s.emit(AUTH_ERROR_EVENT, &crate::auth_error(&e));
                (Err(e.message), true)
            }
            Ok(next) => {
                let answer = json!({ "exp": next.claims.exp, "role": next.claims.role.as_str() });
                (socket.refresh(next).await.map(|()| answer), false)
            }
        },
    };
    reply(ack, &result);
    if end {
        let _ = s.disconnect();
    }
}

/// The acknowledgement: both seeds' shapes at once (`success` for seed 001's queue,
/// `ack` for its reliable sender), plus the error on failure.
pub fn ack_body(result: &Result<Value, RoomError>) -> Value {
    match result {
        Ok(extra) => {
            let mut body = json!({ "success": true, "ack": true });
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            body
        }
        Err(error) => json!({ "success": false, "ack": false, "error": error }),
    }
}

fn reply(ack: Option<AckSender>, result: &Result<Value, RoomError>) {
    if let Some(ack) = ack {
        if ack.send(&ack_body(result)).is_err() {
            tracing::debug!("could not send an acknowledgement: the queue is full");
        }
    }
}

/// The room a `subscribe`/`unsubscribe` names: `{"room": "…"}` (or just the string).
pub fn room_of(data: Option<&Value>) -> Result<String, RoomError> {
    match data {
        Some(Value::String(room)) => Ok(room.clone()),
        Some(v) => v
            .get("room")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| r#"expected {"room": "<name>"}"#.to_owned()),
        None => Err(r#"expected {"room": "<name>"}"#.to_owned()),
    }
}

/// Joins or leaves the named room, then answers with `subscribed`/`unsubscribed` and,
/// if the client asked for one, the ack.
async fn change_room(
    s: &SocketRef,
    socket: &Socket,
    data: Option<Value>,
    ack: Option<AckSender>,
    join: bool,
) {
    let result = match room_of(data.as_ref()) {
        Ok(room) => {
            let done = if join {
                socket.join(&room).await
            } else {
                socket.leave(&room).await
            };
            done.map(|()| room)
        }
        Err(e) => Err(e),
    };
    if let Ok(room) = &result {
        let answer = if join { "subscribed" } else { "unsubscribed" };
        let _ = s.emit(answer, &json!({ "room": room }));
    }
    reply(ack, &result.map(|room| json!({ "room": room })));
}

/// Seed 001's application heartbeat: `pong` echoes the client's timestamp.
fn ping(s: &SocketRef, data: Option<Value>, ack: Option<AckSender>) {
    let timestamp = data.and_then(|v| v.get("timestamp").cloned());
    let _ = s.emit("pong", &json!({ "timestamp": timestamp }));
    reply(ack, &Ok(json!({})));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_carry_both_seed_shapes() {
        assert_eq!(
            ack_body(&Ok(json!({ "room": "celery:tasks" }))),
            json!({ "success": true, "ack": true, "room": "celery:tasks" })
        );
        let e = ack_body(&Err("nope".into()));
        assert_eq!(
            e,
            json!({ "success": false, "ack": false, "error": "nope" })
        );
    }

    #[test]
    fn room_comes_from_an_object_or_a_string() {
        assert_eq!(
            room_of(Some(&json!({ "room": "r", "_msgId": 1 }))).unwrap(),
            "r"
        );
        assert_eq!(room_of(Some(&json!("r"))).unwrap(), "r");
        assert!(room_of(Some(&json!({ "room": 5 }))).is_err());
        assert!(room_of(Some(&Value::Null)).is_err());
        assert!(room_of(None).is_err());
    }
}
