//! What a Socket.IO client may emit: `subscribe`/`unsubscribe {room}` and
//! `ping {timestamp}` (seeds 000/001); `subscribe-admin`, `unsubscribe-admin` and
//! `request-system-metrics` (seed 003, admins); `refresh {token}` (a fresh token keeps
//! the socket past the old one's expiry). Anything else, or a payload without what it
//! needs, is answered with an error in the acknowledgement (if the client asked for one)
//! and otherwise ignored: a client's mistake never ends its connection. A request its
//! role may not make also gets `auth-error` (seed 003).

use std::time::Duration;

use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use vigil_core::auth::Role;
use vigil_core::error::ApiError;

use super::rooms::RoomError;
use super::session::{Session, AUTH_ERROR_EVENT};
use crate::PushState;

/// Seed 003's admin-only system metrics event.
pub const SYSTEM_METRICS_EVENT: &str = "system-metrics";
/// Where the host reads them, as the socket's user.
const SYSTEM_METRICS_PATH: &str = "/api/v1/metrics/system";

/// How long a reply waits for a brand-new socket to count as connected. socketioxide
/// sends the connect packet before it sets the flag `emit` checks, so a client that
/// subscribes at once can be answered in between (seen under CPU contention in
/// `scripts/bench`: ~0.3% of sockets never got `subscribed`); acks are not affected.
const CONNECTED_WAIT: Duration = Duration::from_millis(500);
/// How often the flag is re-checked while waiting.
const CONNECTED_POLL: Duration = Duration::from_millis(1);

/// Registers the client events on `s`; done before the socket is connected so no
/// early `subscribe` can arrive before its handler.
pub fn register(s: &SocketRef, app: PushState) {
    s.on("subscribe", subscribe);
    s.on("unsubscribe", unsubscribe);
    s.on("ping", ping);
    // Handlers that need the app capture it (socketioxide's state extractor is a
    // feature Vigil does not enable).
    let a = app.clone();
    s.on("subscribe-admin", move |s: SocketRef, ack: AckSender| {
        admin_events(s, ack, a.clone(), true)
    });
    let a = app.clone();
    s.on("unsubscribe-admin", move |s: SocketRef, ack: AckSender| {
        admin_events(s, ack, a.clone(), false)
    });
    let a = app.clone();
    s.on(
        "request-system-metrics",
        move |s: SocketRef, ack: AckSender| request_system_metrics(s, ack, a.clone()),
    );
    s.on(
        "refresh",
        move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            refresh(s, data.ok(), ack, app.clone())
        },
    );
    s.on_fallback(unknown);
    s.on_disconnect(super::session::on_disconnect);
}

/// The session, if the socket's user is an admin; otherwise `auth-error` and `Err`.
async fn admin_session(s: &SocketRef, what: &str) -> Result<Session, RoomError> {
    let session = Session::of(s).ok_or("no session")?;
    if session.auth().claims.role == Role::Admin {
        return Ok(session);
    }
    let e = ApiError::forbidden(format!("{what} needs role admin"));
    emit_when_connected(s, AUTH_ERROR_EVENT, &crate::auth_error(&e)).await;
    Err(e.message)
}

/// `subscribe-admin` / `unsubscribe-admin`: admin metrics on or off; on, the current
/// metrics follow at once.
async fn admin_events(s: SocketRef, ack: AckSender, app: PushState, on: bool) {
    let result = match admin_session(&s, "subscribe-admin").await {
        Ok(session) => session.admin_events(on).await,
        Err(e) => Err(e),
    };
    reply(
        ack,
        &result
            .clone()
            .map(|()| json!({ "room": vigil_core::event::METRICS_TOPIC })),
    );
    if on && result.is_ok() {
        let _ = send_system_metrics(&s, &app).await;
    }
}

async fn request_system_metrics(s: SocketRef, ack: AckSender, app: PushState) {
    let result = match admin_session(&s, "request-system-metrics").await {
        Ok(_) => send_system_metrics(&s, &app).await,
        Err(e) => Err(e),
    };
    reply(ack, &result.map(|()| json!({})));
}

/// Reads the system metrics as the socket's user and emits them.
async fn send_system_metrics(s: &SocketRef, app: &PushState) -> Result<(), RoomError> {
    let session = Session::of(s).ok_or("no session")?;
    let metrics = app
        .internal_get(SYSTEM_METRICS_PATH, &session.auth().token)
        .await
        .ok_or("system metrics are unavailable")?;
    s.emit(SYSTEM_METRICS_EVENT, &metrics)
        .map_err(|e| format!("could not send: {e}"))
}

/// `refresh {token}`: a fresh token for the same user. On the admin namespace a token
/// that is no longer admin ends the socket with `auth-error` (after the ack).
async fn refresh(s: SocketRef, data: Option<Value>, ack: AckSender, app: PushState) {
    let token = data.and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned));
    let (result, end) = match (token, Session::of(&s)) {
        (None, _) => (Err(r#"expected {"token": "<jwt>"}"#.to_owned()), false),
        (_, None) => (Err("no session".to_owned()), false),
        (Some(token), Some(session)) => match session.auth().refresh(&token, app.verifier()) {
            Err(e) => {
                emit_when_connected(&s, AUTH_ERROR_EVENT, &crate::auth_error(&e)).await;
                (Err(e.message), false)
            }
            Ok(next) if s.ns() == super::ADMIN_NAMESPACE && next.claims.role != Role::Admin => {
                let e = ApiError::forbidden(format!(
                    "namespace {} needs role admin",
                    super::ADMIN_NAMESPACE
                ));
                emit_when_connected(&s, AUTH_ERROR_EVENT, &crate::auth_error(&e)).await;
                (Err(e.message), true)
            }
            Ok(next) => {
                let answer = json!({ "exp": next.claims.exp, "role": next.claims.role.as_str() });
                (session.refresh(next).await.map(|()| answer), false)
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

fn reply(ack: AckSender, result: &Result<Value, RoomError>) {
    if let Err(e) = ack.send(&ack_body(result)) {
        tracing::debug!(error = %e, "could not send an acknowledgement");
    }
}

/// The room a `subscribe`/`unsubscribe` names: `{"room": "…"}` (or just the string).
pub fn room_of(data: &Result<Value, socketioxide::ParserError>) -> Result<String, RoomError> {
    match data {
        Ok(Value::String(room)) => Ok(room.clone()),
        Ok(v) => v
            .get("room")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| r#"expected {"room": "<name>"}"#.to_owned()),
        Err(_) => Err(r#"expected {"room": "<name>"}"#.to_owned()),
    }
}

async fn subscribe(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender) {
    change_room(s, data, ack, true).await;
}

async fn unsubscribe(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender) {
    change_room(s, data, ack, false).await;
}

/// Joins or leaves the named room, then answers with `subscribed`/`unsubscribed` and,
/// if the client asked for one, the ack.
async fn change_room(
    s: SocketRef,
    data: Result<Value, socketioxide::ParserError>,
    ack: AckSender,
    join: bool,
) {
    let result = match (room_of(&data), Session::of(&s)) {
        (Ok(room), Some(session)) => {
            let done = if join {
                session.join(&room).await
            } else {
                session.leave(&room).await
            };
            done.map(|()| room)
        }
        (Err(e), _) => Err(e),
        (_, None) => Err("no session".to_owned()),
    };
    if let Ok(room) = &result {
        let answer = if join { "subscribed" } else { "unsubscribed" };
        emit_when_connected(&s, answer, &json!({ "room": room })).await;
    }
    reply(ack, &result.map(|room| json!({ "room": room })));
}

/// Seed 001's application heartbeat: `pong` echoes the client's timestamp.
async fn ping(s: SocketRef, TryData(data): TryData<Value>, ack: AckSender) {
    let timestamp = data.ok().and_then(|v| v.get("timestamp").cloned());
    emit_when_connected(&s, "pong", &json!({ "timestamp": timestamp })).await;
    reply(ack, &Ok(json!({})));
}

/// Emits a reply, first waiting (briefly) for the socket's connect to complete.
async fn emit_when_connected(s: &SocketRef, event: &str, data: &Value) {
    let deadline = tokio::time::Instant::now() + CONNECTED_WAIT;
    while !s.connected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(CONNECTED_POLL).await;
    }
    if let Err(e) = s.emit(event, data) {
        tracing::debug!(error = %e, event, "could not send a reply");
    }
}

async fn unknown(Event(event): Event, ack: AckSender) {
    tracing::debug!(event, "unknown Socket.IO event");
    reply(ack, &Err(format!("unknown event `{event}`")));
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
            room_of(&Ok(json!({ "room": "r", "_msgId": 1 }))).unwrap(),
            "r"
        );
        assert_eq!(room_of(&Ok(json!("r"))).unwrap(), "r");
        assert!(room_of(&Ok(json!({ "room": 5 }))).is_err());
        assert!(room_of(&Ok(Value::Null)).is_err());
    }
}
