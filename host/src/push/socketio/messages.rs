//! What a Socket.IO client may emit: `subscribe`/`unsubscribe {room}` and
//! `ping {timestamp}` (seeds 000/001). Anything else, or a payload without what it
//! needs, is answered with an error in the acknowledgement (if the client asked for one)
//! and otherwise ignored: a client's mistake never ends its connection.

use std::time::Duration;

use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};

use super::rooms::RoomError;
use super::session::Session;

/// How long a reply waits for a brand-new socket to count as connected. socketioxide
/// sends the connect packet before it sets the flag `emit` checks, so a client that
/// subscribes at once can be answered in between (seen under CPU contention in
/// `scripts/bench`: ~0.3% of sockets never got `subscribed`); acks are not affected.
const CONNECTED_WAIT: Duration = Duration::from_millis(500);
/// How often the flag is re-checked while waiting.
const CONNECTED_POLL: Duration = Duration::from_millis(1);

/// Registers the client events on `s`; done before the socket is connected so no
/// early `subscribe` can arrive before its handler.
pub fn register(s: &SocketRef) {
    s.on("subscribe", subscribe);
    s.on("unsubscribe", unsubscribe);
    s.on("ping", ping);
    s.on_fallback(unknown);
    s.on_disconnect(super::session::on_disconnect);
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
