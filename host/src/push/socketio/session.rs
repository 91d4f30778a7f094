//! One Socket.IO socket's place in the hub: its subscription, its rooms, and the task
//! that forwards what the hub sends it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError};
use tokio::sync::Notify;

use super::rooms::{RoomError, Rooms};
use crate::hub::{Hub, Outgoing, Subscription};

/// Event telling the client why the server is about to disconnect it (the SSE
/// transport's `disconnect` event; Socket.IO reserves that name).
pub const CLOSING_EVENT: &str = "closing";
/// How often, and how many times, closing is retried while the socket's buffer is
/// full (its client is not reading): up to 5 s, after which Engine.IO's heartbeat
/// timeout reaps a client that reads nothing at all.
const CLOSE_RETRY_INTERVAL: Duration = Duration::from_millis(100);
const CLOSE_RETRIES: u32 = 50;

/// Kept in the socket's extensions from the connect middleware on.
#[derive(Clone)]
pub struct Session {
    hub: Hub,
    id: u64,
    /// Held across the hub update so concurrent joins apply in the order they lock.
    rooms: Arc<tokio::sync::Mutex<Rooms>>,
    /// The subscription until the forwarder takes it.
    pending: Arc<Mutex<Option<Subscription>>>,
    /// Notified when the socket disconnects, so the forwarder ends.
    gone: Arc<Notify>,
}

impl Session {
    /// Wraps a fresh hub subscription whose filter `rooms` made.
    pub fn new(hub: Hub, sub: Subscription, rooms: Rooms) -> Self {
        Self {
            hub,
            id: sub.id,
            rooms: Arc::new(tokio::sync::Mutex::new(rooms)),
            pending: Arc::new(Mutex::new(Some(sub))),
            gone: Arc::default(),
        }
    }

    /// The session of `s`, if its connect middleware set one.
    pub fn of(s: &SocketRef) -> Option<Self> {
        s.extensions.get::<Self>()
    }

    /// Joins `room`; once this returns, every later event of the room reaches the socket.
    pub async fn join(&self, room: &str) -> Result<(), RoomError> {
        let mut rooms = self.rooms.lock().await;
        if rooms.join(room)? {
            self.apply(&rooms).await?;
        }
        Ok(())
    }

    /// Leaves `room` (leaving a room one is not in is not an error).
    pub async fn leave(&self, room: &str) -> Result<(), RoomError> {
        let mut rooms = self.rooms.lock().await;
        if rooms.leave(room) {
            self.apply(&rooms).await?;
        }
        Ok(())
    }

    async fn apply(&self, rooms: &Rooms) -> Result<(), RoomError> {
        if self.hub.update_filter(self.id, rooms.filter()).await {
            Ok(())
        } else {
            Err("the subscription has ended (server shutting down or connection too slow)".into())
        }
    }

    /// Ends the forwarder; called on disconnect.
    pub fn end(&self) {
        self.gone.notify_one();
    }

    /// Forwards the hub's messages to `s` until either side ends.
    pub async fn forward(self, s: SocketRef) {
        let taken = self.pending.lock().ok().and_then(|mut p| p.take());
        let Some(mut sub) = taken else { return };
        loop {
            tokio::select! {
                msg = sub.rx.recv() => match msg {
                    Some(msg) => {
                        if let Err(reason) = emit(&s, &msg) {
                            return close(s, reason).await;
                        }
                    }
                    None => {
                        let reason = sub.closed.get().cloned().unwrap_or_else(|| "server closed".into());
                        return close(s, &reason).await;
                    }
                },
                () = self.gone.notified() => return,
            }
        }
    }
}

/// Emits one hub message under its event name; the frame is already the payload's JSON
/// (the dispatch component's `socketio` encoding), so it is passed through unparsed.
fn emit(s: &SocketRef, msg: &Outgoing) -> Result<(), &'static str> {
    let result = if msg.frame.binary {
        s.emit(&*msg.kind, &bytes::Bytes::from(msg.frame.bytes.clone()))
    } else {
        match std::str::from_utf8(&msg.frame.bytes)
            .ok()
            .and_then(|t| RawValue::from_string(t.to_owned()).ok())
        {
            Some(raw) => s.emit(&*msg.kind, &raw),
            None => {
                tracing::error!(kind = %msg.kind, "dispatch produced a frame that is not JSON; skipped");
                return Ok(());
            }
        }
    };
    match result {
        Ok(()) | Err(SendError::Socket(SocketError::Closed)) => Ok(()),
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            Err("slow consumer: the connection's buffer is full")
        }
        Err(e) => {
            tracing::error!(error = %e, kind = %msg.kind, "emit failed");
            Ok(())
        }
    }
}

/// Tells the client why, then disconnects it. Both need room in the socket's buffer,
/// which is full when the client is too slow: retried while it drains, never silently
/// leaving a connected socket that no longer gets events.
async fn close(s: SocketRef, reason: &str) {
    tracing::info!(sid = %s.id, reason, "closing Socket.IO connection");
    let mut told = false;
    for _ in 0..CLOSE_RETRIES {
        if !s.connected() {
            return;
        }
        if !told {
            told = s
                .emit(CLOSING_EVENT, &serde_json::json!({ "reason": reason }))
                .is_ok();
        }
        if told && s.clone().disconnect().is_ok() {
            return;
        }
        tokio::time::sleep(CLOSE_RETRY_INTERVAL).await;
    }
    tracing::warn!(sid = %s.id, "socket buffer still full; left to the Engine.IO heartbeat");
}

/// Registered on every socket: the forwarder ends with it.
pub async fn on_disconnect(s: SocketRef, reason: DisconnectReason) {
    tracing::debug!(sid = %s.id, ?reason, "Socket.IO socket disconnected");
    if let Some(session) = Session::of(&s) {
        session.end();
    }
}
