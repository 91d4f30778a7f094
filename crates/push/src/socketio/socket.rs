//! One Socket.IO socket's place in the hub: its subscription (on its session's queue,
//! in its namespace slot), its rooms, its token, and the timer that ends it when the
//! token expires. No forwarder: the hub queues straight into the session's queue.

use std::sync::Mutex;

use tokio::sync::watch;
use tokio::time::Instant;
use vigil_transport::eio::SocketRef;

use super::rooms::{RoomError, Rooms};
use crate::hub::{Hub, Subscription, CLOSING_EVENT};
use crate::metrics::{ConnectionGuard, Metrics};
use crate::{Authorized, PushState};

/// Event telling the client its token expired or a request needed another role (seed 003).
pub const AUTH_ERROR_EVENT: &str = "auth-error";

/// What the application keeps per socket; dropping it unsubscribes.
pub struct Socket {
    hub: Hub,
    sub: Subscription,
    /// Held across the hub update so concurrent joins apply in the order they lock.
    rooms: tokio::sync::Mutex<Rooms>,
    /// The token the socket runs on; `refresh` replaces it.
    auth: Mutex<Authorized>,
    /// The token's expiry, watched by [`Socket::watch_expiry`]'s task.
    deadline: watch::Sender<Instant>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    _guard: ConnectionGuard,
}

impl Socket {
    /// Wraps a fresh hub subscription whose filter `rooms` made.
    pub fn new(
        hub: Hub,
        sub: Subscription,
        rooms: Rooms,
        auth: Authorized,
        guard: ConnectionGuard,
    ) -> Self {
        let (deadline, _) = watch::channel(auth.deadline());
        Self {
            hub,
            sub,
            rooms: tokio::sync::Mutex::new(rooms),
            auth: Mutex::new(auth),
            deadline,
            watcher: Mutex::default(),
            _guard: guard,
        }
    }

    /// Starts the timer that ends `s` when its token expires (a refresh moves it).
    pub fn watch_expiry(&self, app: PushState, s: SocketRef) {
        let at = self.deadline.subscribe();
        let task = tokio::spawn(watch_expiry(app, s, at));
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// The token the socket runs on now.
    pub fn auth(&self) -> Authorized {
        self.auth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the token (after [`Authorized::refresh`] accepted it), applying a role
    /// change to what the socket receives.
    pub async fn refresh(&self, next: Authorized) -> Result<(), RoomError> {
        let admin = next.claims.role == vigil_core::auth::Role::Admin;
        let mut rooms = self.rooms.lock().await;
        rooms.set_owner((!admin).then(|| next.claims.sub.clone()));
        self.deadline.send_replace(next.deadline());
        *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = next;
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
        if self.hub.update_filter(self.sub.id, rooms.filter()).await {
            Ok(())
        } else {
            Err("the subscription has ended (server shutting down or connection too slow)".into())
        }
    }

    /// The socket is gone: the subscription and the expiry timer end.
    pub fn end(&self) {
        self.hub.unsubscribe(self.sub.id);
        if let Some(task) = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // The subscription unsubscribes itself.
        if let Some(task) = self.watcher.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// Ends `s` with `auth-error` when its token expires; a refresh moves the deadline.
async fn watch_expiry(app: PushState, s: SocketRef, mut deadline: watch::Receiver<Instant>) {
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep_until(at) => break,
            changed = deadline.changed() => if changed.is_err() { return },
        }
    }
    Metrics::inc(&app.metrics().expired);
    let e = crate::token_expired();
    let _ = s.emit(AUTH_ERROR_EVENT, &crate::auth_error(&e));
    let _ = s.emit(
        CLOSING_EVENT,
        &serde_json::json!({ "reason": "token expired" }),
    );
    let _ = s.disconnect();
}
