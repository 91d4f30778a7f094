//! One Socket.IO socket's place in the hub: its subscription, its rooms, and the task
//! that forwards what the hub sends it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use socketioxide::extract::SocketRef;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError};
use tokio::sync::Notify;

use super::rooms::{RoomError, Rooms};
use crate::hub::{Hub, Payload, Queue, Subscription, Wire};
use crate::metrics::{ConnectionGuard, Metrics};
use crate::resume::Catchup;
use crate::Authorized;

/// Event telling the client why the server is about to disconnect it (the SSE
/// transport's `disconnect` event; Socket.IO reserves that name).
pub const CLOSING_EVENT: &str = "closing";
/// How often, and how many times, closing is retried while the socket's buffer is
/// full (its client is not reading): up to 5 s, after which Engine.IO's heartbeat
/// timeout reaps a client that reads nothing at all.
const CLOSE_RETRY_INTERVAL: Duration = Duration::from_millis(100);
const CLOSE_RETRIES: u32 = 50;
/// How often a socket whose buffer is full is retried.
const FULL_RETRY_INTERVAL: Duration = Duration::from_millis(5);
/// Most queued messages the forwarder takes per wake-up.
const FORWARD_BATCH: usize = 64;

/// Event telling the client its token expired or a request needed another role (seed 003).
pub const AUTH_ERROR_EVENT: &str = "auth-error";

/// What the forwarder takes over when the socket is connected.
struct Start {
    sub: Subscription,
    /// What a resuming socket missed, sent before anything live.
    catchup: Option<Catchup>,
    guard: ConnectionGuard,
}

/// Kept in the socket's extensions from the connect middleware on.
#[derive(Clone)]
pub struct Session {
    hub: Hub,
    metrics: Arc<Metrics>,
    id: u64,
    /// Held across the hub update so concurrent joins apply in the order they lock.
    rooms: Arc<tokio::sync::Mutex<Rooms>>,
    /// The token the socket runs on; `refresh` replaces it.
    auth: Arc<Mutex<Authorized>>,
    /// Notified on refresh, so the forwarder waits for the new expiry.
    refreshed: Arc<Notify>,
    /// The subscription until the forwarder takes it.
    pending: Arc<Mutex<Option<Start>>>,
}

impl Session {
    /// Wraps a fresh hub subscription whose filter `rooms` made.
    pub fn new(
        hub: Hub,
        metrics: Arc<Metrics>,
        sub: Subscription,
        rooms: Rooms,
        auth: Authorized,
        catchup: Option<Catchup>,
        guard: ConnectionGuard,
    ) -> Self {
        Self {
            hub,
            metrics,
            id: sub.id,
            rooms: Arc::new(tokio::sync::Mutex::new(rooms)),
            auth: Arc::new(Mutex::new(auth)),
            refreshed: Arc::default(),
            pending: Arc::new(Mutex::new(Some(Start {
                sub,
                catchup,
                guard,
            }))),
        }
    }

    /// The token the socket runs on now.
    pub fn auth(&self) -> Authorized {
        self.auth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// When the socket's current token expires.
    fn deadline(&self) -> tokio::time::Instant {
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deadline()
    }

    /// Replaces the token (after [`Authorized::refresh`] accepted it), applying a role
    /// change to what the socket receives.
    pub async fn refresh(&self, next: Authorized) -> Result<(), RoomError> {
        let admin = next.claims.role == vigil_core::auth::Role::Admin;
        let mut rooms = self.rooms.lock().await;
        rooms.set_owner((!admin).then(|| next.claims.sub.clone()));
        *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = next;
        self.refreshed.notify_one();
        self.apply(&rooms).await
    }

    /// Starts or stops admin metrics (`subscribe-admin`); the caller checked the role.
    pub async fn admin_events(&self, on: bool) -> Result<(), RoomError> {
        let mut rooms = self.rooms.lock().await;
        if rooms.set_admin_events(on) {
            self.apply(&rooms).await?;
        }
        Ok(())
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

    /// Ends the subscription, and with it the forwarder; called on disconnect.
    pub fn end(&self) {
        self.hub.unsubscribe(self.id);
    }

    /// Forwards the hub's messages to `s` until either side ends: first what a
    /// resuming socket missed (or `reset`), then live ones, until the token expires.
    pub async fn forward(self, s: SocketRef) {
        let taken = self.pending.lock().ok().and_then(|mut p| p.take());
        let Some(Start {
            sub,
            catchup,
            guard: _guard,
        }) = taken
        else {
            return;
        };
        let mut upto = 0;
        match catchup {
            Some(Catchup::Replay { frames, upto: head }) => {
                for f in &frames {
                    if let Err(reason) = deliver(&s, f, &sub.queue).await {
                        return close(s, &reason).await;
                    }
                }
                upto = head;
            }
            Some(Catchup::Reset { seq }) => {
                let _ = s.emit("reset", &serde_json::json!({ "seq": seq }));
            }
            None => {}
        }
        let expiry = tokio::time::sleep_until(self.deadline());
        tokio::pin!(expiry);
        // Made once, not per message: a `Notified` registers and unregisters itself.
        let refreshed = self.refreshed.notified();
        tokio::pin!(refreshed);
        let mut batch = Vec::with_capacity(FORWARD_BATCH);
        loop {
            // Biased: the queue first, so a busy socket's wake-up polls nothing else.
            tokio::select! {
                biased;
                n = sub.queue.recv_many(&mut batch, FORWARD_BATCH) => {
                    if n == 0 {
                        let reason = sub.closed().unwrap_or_else(|| "server closed".into());
                        return close(s, &reason).await;
                    }
                    for msg in batch.drain(..) {
                        match msg {
                            Wire::Payload { payload, .. } if !crate::replayed(payload.seq, upto) => {
                                if let Err(reason) = deliver(&s, &payload, &sub.queue).await {
                                    return close(s, &reason).await;
                                }
                            }
                            Wire::End { reason, .. } => return close(s, &reason).await,
                            _ => {} // Engine.IO has its own heartbeat
                        }
                    }
                }
                () = &mut expiry => {
                    Metrics::inc(&self.metrics.expired);
                    let e = crate::token_expired();
                    let _ = s.emit(AUTH_ERROR_EVENT, &crate::auth_error(&e));
                    return close(s, "token expired").await;
                }
                () = &mut refreshed => {
                    expiry.as_mut().reset(self.deadline());
                    refreshed.set(self.refreshed.notified());
                }
            }
        }
    }
}

/// Emits one hub message under its event name, waiting while the socket's buffer is
/// full: the hub's bounded queue behind it decides when a socket is too slow (degraded,
/// then closed), so a burst or a starved writer never costs the client events. `Err`
/// with the reason once the hub closed the subscription, or the socket went away.
async fn deliver(s: &SocketRef, msg: &Payload, queue: &Queue) -> Result<(), String> {
    loop {
        match emit(s, msg) {
            Emitted::Done => return Ok(()),
            Emitted::Full => {
                if let Some(reason) = queue.closed() {
                    return Err(reason);
                }
                if !s.connected() {
                    return Err("disconnected".into());
                }
                tokio::time::sleep(FULL_RETRY_INTERVAL).await;
            }
        }
    }
}

enum Emitted {
    /// Queued, or not sendable at all (socket closed, payload not JSON; logged).
    Done,
    /// The socket's buffer is full.
    Full,
}

/// Emits one hub message under its event name; the frame is already the payload's JSON
/// (the dispatch component's `socketio` encoding), so it is passed through unparsed.
fn emit(s: &SocketRef, msg: &Payload) -> Emitted {
    let result = if msg.binary {
        s.emit(&*msg.kind, &msg.bytes)
    } else {
        match msg.raw_json() {
            Some(raw) => s.emit(&*msg.kind, raw),
            None => return Emitted::Done,
        }
    };
    match result {
        Ok(()) | Err(SendError::Socket(SocketError::Closed)) => Emitted::Done,
        Err(SendError::Socket(SocketError::InternalChannelFull)) => Emitted::Full,
        Err(e) => {
            tracing::error!(error = %e, kind = %msg.kind, "emit failed");
            Emitted::Done
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
