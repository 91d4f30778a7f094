//! Socket.IO v4 (seeds 000, 001, 003) with socketioxide, on the same port as the rest.
//!
//! - Namespace [`ADMIN_NAMESPACE`] (`/ws/celery/tasks`): admins only; a socket receives
//!   the rooms it `subscribe`s to (seed 000).
//! - The default namespace `/`: any reader; a socket receives everything it may see
//!   (a viewer: its own tasks) until it subscribes to rooms, then only those (seed 003's
//!   client never subscribes).
//!
//! A socket is one hub subscriber with the `socketio` encoding: every event goes through
//! the dispatch component (filter, rate limit, `batch_update`), and a room change is a
//! hub filter change ([`session`]). The token comes in the handshake's `auth.token` and
//! is checked by the same rules as SSE and WebSocket; a refusal is a `connect_error`
//! whose message says why.
//!
//! - [`rooms`]: which rooms exist and the filter they make.
//! - [`session`]: the subscription and the task forwarding it to the socket.
//! - [`messages`]: `subscribe`, `unsubscribe`, `ping`, and anything else a client emits.

pub mod messages;
pub mod rooms;
pub mod session;

use serde_json::Value;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use vigil_core::auth::Role;
use vigil_core::error::ApiError;

use self::rooms::Rooms;
use self::session::Session;
use super::PushQuery;
use crate::dispatch::Encoding;
use crate::hub::Spec;
use crate::server::AppState;

/// Seed 000's namespace for the Celery admin dashboard.
pub const ADMIN_NAMESPACE: &str = "/ws/celery/tasks";
/// Packets socketioxide buffers per socket. The hub's bounded queue is in front of it
/// and the rate limit keeps it to ~12 messages a second, so a socket whose buffer
/// still fills is not reading (e.g. a polling client that stopped polling): it is
/// closed as a slow consumer rather than buffered without bound.
const SOCKET_BUFFER: usize = 256;
/// Largest HTTP long-polling body a client may post; clients only send small control
/// messages.
const MAX_POLLING_PAYLOAD: u64 = 64 * 1024;
/// Largest WebSocket message a client may send, for the same reason.
const MAX_WS_MESSAGE: usize = 64 * 1024;

/// Which namespace a socket connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Admin,
    Default,
}

/// The layer serving `/socket.io/`, and the handle to close every socket on shutdown.
pub fn layer(app: &AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SOCKET_BUFFER)
        .max_payload(MAX_POLLING_PAYLOAD)
        .ws_max_message_size(MAX_WS_MESSAGE)
        .ping_interval(app.push().heartbeat)
        .build_layer();
    for (path, scope) in [(ADMIN_NAMESPACE, Scope::Admin), ("/", Scope::Default)] {
        let app = app.clone();
        let middleware = move |s: SocketRef, TryData(auth): TryData<Value>| {
            let app = app.clone();
            async move { connect(&s, auth.ok(), &app, scope).await }
        };
        let handler = async |s: SocketRef| {
            if let Some(session) = Session::of(&s) {
                session.forward(s).await;
            }
        };
        io.ns(path, handler.with(middleware));
    }
    (layer, io)
}

/// Authenticates and subscribes before the socket counts as connected, so that once
/// the client sees `connect` it misses no event it may see, and an early `subscribe`
/// finds its handler.
async fn connect(
    s: &SocketRef,
    auth: Option<Value>,
    app: &AppState,
    scope: Scope,
) -> Result<(), ApiError> {
    let token = auth
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let query = PushQuery {
        access_token: token,
        ..PushQuery::default()
    };
    let claims = super::authenticate(None, &query, app.secret()).map_err(|e| e.0)?;
    if scope == Scope::Admin && claims.role != Role::Admin {
        return Err(ApiError::forbidden(format!(
            "namespace {ADMIN_NAMESPACE} needs role admin"
        )));
    }
    let owner = (claims.role != Role::Admin).then(|| claims.sub.clone());
    let rooms = Rooms::new(scope == Scope::Default, owner);
    let spec = Spec {
        filter: rooms.filter(),
        encoding: Encoding::Socketio,
        gzip: false,
    };
    let sub = app
        .hub()
        .subscribe(spec)
        .await
        .ok_or_else(|| ApiError::unavailable("the server is shutting down"))?;
    tracing::debug!(sid = %s.id, ns = s.ns(), user = claims.sub, subscriber = sub.id, "Socket.IO connect");
    s.extensions
        .insert(Session::new(app.hub().clone(), sub, rooms));
    messages::register(s);
    Ok(())
}
