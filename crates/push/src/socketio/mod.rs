//! Socket.IO v4 (seeds 000, 001, 003) on Vigil's own Engine.IO v4 / Socket.IO v5 layer
//! (`vigil_transport::eio`), on the same port as the rest.
//!
//! - Namespace [`ADMIN_NAMESPACE`] (`/ws/celery/tasks`): admins only; a socket receives
//!   the rooms it `subscribe`s to (seed 000).
//! - The default namespace `/`: any reader; a socket receives everything it may see
//!   (a viewer: its own tasks) until it subscribes to rooms, then only those (seed 003's
//!   client never subscribes).
//!
//! A socket is one hub subscriber with the `socketio` encoding, subscribed on its
//! session's queue in its namespace slot: the hub queues straight into the queue the
//! session's transport (WebSocket or long-polling) drains, every event through the
//! dispatch component (filter, rate limit, `batch_update`); a room change is a hub
//! filter change. The token comes in the handshake's `auth.token` and is checked by the
//! same rules as SSE and WebSocket; a refusal is a `connect_error` whose message says why.
//!
//! - [`rooms`]: which rooms exist and the filter they make.
//! - [`socket`]: a socket's subscription, rooms, token and expiry.
//! - [`messages`]: `subscribe`, `unsubscribe`, `ping`, and anything else a client emits.

mod handshake;
pub mod messages;
pub mod rooms;
pub mod socket;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::Value;
use vigil_core::auth::Role;
use vigil_core::error::ApiError;
use vigil_transport::conn::Outgoing;
use vigil_transport::eio::{self, Event, Refusal, SocketRef};

use self::handshake::Handshake;
use self::rooms::Rooms;
use self::socket::Socket;
use super::resume::{self, Catchup};
use super::PushQuery;
use crate::dispatch::Encoding;
use crate::hub::{control, Spec, Subscription};
use crate::metrics::Transport;
use crate::PushState;

/// Seed 000's namespace for the Celery admin dashboard.
pub const ADMIN_NAMESPACE: &str = "/ws/celery/tasks";
/// The path Socket.IO clients use.
pub const PATH: &str = "/socket.io/";
/// Largest HTTP long-polling body or WebSocket message a client may send; clients only
/// send small control messages.
const MAX_PAYLOAD: usize = 64 * 1024;
/// How long the server waits for a pong before it drops a session (Socket.IO's default).
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The Socket.IO server.
pub type Server = eio::Server<Vigil>;

/// The server for `app`: pings every push heartbeat interval, a session's queue as
/// long as any push connection's.
pub fn server(app: &PushState) -> Arc<Server> {
    let config = eio::Config {
        ping_interval: app.push().heartbeat,
        ping_timeout: PING_TIMEOUT,
        max_payload: MAX_PAYLOAD,
        queue_capacity: app.push().queue_capacity,
    };
    eio::Server::new(Vigil { app: app.clone() }, config)
}

/// Serves a request to [`PATH`].
pub async fn endpoint(State(server): State<Arc<Server>>, req: Request) -> Response {
    server.handle(req).await.map(Body::new)
}

/// Which namespace a socket connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Admin,
    Default,
}

/// The application behind the Socket.IO server.
pub struct Vigil {
    app: PushState,
}

impl eio::Handler for Vigil {
    type Socket = Socket;

    async fn connect(&self, s: &SocketRef, auth: Option<Value>) -> Result<Socket, Refusal> {
        let scope = match s.ns() {
            ADMIN_NAMESPACE => Scope::Admin,
            "/" => Scope::Default,
            _ => {
                return Err(Refusal {
                    message: "Invalid namespace".into(),
                    data: None,
                })
            }
        };
        connect(s, auth, &self.app, scope)
            .await
            .map_err(|e| Refusal {
                message: e.to_string(),
                data: serde_json::to_value(&e).ok(),
            })
    }

    async fn connected(&self, s: &SocketRef, socket: &Arc<Socket>) {
        socket.watch_expiry(self.app.clone(), s.clone());
    }

    async fn event(&self, s: SocketRef, socket: Arc<Socket>, event: Event) {
        messages::handle(&self.app, s, socket, event).await;
    }

    fn disconnect(&self, s: &SocketRef, socket: &Socket, reason: &str) {
        tracing::debug!(sid = s.id(), reason, "Socket.IO socket disconnected");
        socket.end();
    }
}

/// Authenticates and subscribes before the client gets its CONNECT, so that it misses
/// no event it may see and an early `subscribe` finds the socket. What a resuming socket
/// missed is put in front of everything queued (the client buffers events until its
/// CONNECT, then takes them in order).
async fn connect(
    s: &SocketRef,
    auth: Option<Value>,
    app: &PushState,
    scope: Scope,
) -> Result<Socket, ApiError> {
    let hs = Handshake::parse(auth.as_ref())?;
    let query = PushQuery {
        access_token: hs.token.clone(),
        ..PushQuery::default()
    };
    let authorized = super::authenticate(None, &query, app.verifier()).map_err(|e| e.0)?;
    let claims = &authorized.claims;
    if scope == Scope::Admin && claims.role != Role::Admin {
        return Err(ApiError::forbidden(format!(
            "namespace {ADMIN_NAMESPACE} needs role admin"
        )));
    }
    let owner = (claims.role != Role::Admin).then(|| claims.sub.clone());
    let mut rooms = Rooms::new(scope == Scope::Default, owner);
    for room in &hs.rooms {
        rooms
            .join(room)
            .map_err(|e| ApiError::invalid_field("rooms", e))?;
    }
    let spec = Spec {
        filter: rooms.filter(),
        encoding: Encoding::Socketio,
        // For Socket.IO this means "binary chosen": see the `socketio` encoding.
        gzip: hs.binary,
        heartbeat: false,
    };
    let sub = app
        .hub()
        .subscribe_on(spec, s.queue().clone(), s.slot())
        .await
        .ok_or_else(|| ApiError::unavailable("the server is shutting down"))?;
    if let Some(since) = hs.since {
        resume_first(s, app, &sub, since).await?;
    }
    tracing::debug!(
        sid = s.id(),
        ns = s.ns(),
        user = claims.sub,
        subscriber = sub.id,
        "Socket.IO connect"
    );
    let guard = app.metrics().connected(Transport::SocketIo);
    Ok(Socket::new(
        app.hub().clone(),
        sub,
        rooms,
        authorized,
        guard,
    ))
}

/// Puts what a socket resuming after `since` missed (or `reset`) in front of
/// everything its session has queued: before any live event of its subscription.
async fn resume_first(
    s: &SocketRef,
    app: &PushState,
    sub: &Subscription,
    since: u64,
) -> Result<(), ApiError> {
    let catchup = resume::catch_up(app, sub, since).await.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
        ApiError::unavailable("the event log is unavailable")
    })?;
    let ns = s.slot();
    let first: Vec<Outgoing> = match catchup {
        Catchup::Replay { frames, .. } => frames
            .into_iter()
            .map(|payload| Outgoing::Payload { ns, payload })
            .collect(),
        Catchup::Reset { seq } => {
            let body = serde_json::json!({ "seq": seq });
            vec![Outgoing::Payload {
                ns,
                payload: control("reset", &body),
            }]
        }
    };
    // Refused only by a closed queue: the session is ending anyway.
    let _ = s.queue().push_front_exempt(first);
    Ok(())
}
