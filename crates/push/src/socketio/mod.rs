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

use axum::extract::Request;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use vigil_core::auth::Role;
use vigil_core::error::ApiError;

use self::rooms::Rooms;
use self::session::Session;
use super::{resume, PushQuery};
use crate::dispatch::Encoding;
use crate::hub::Spec;
use crate::metrics::Transport;
use crate::PushState;

/// Seed 000's namespace for the Celery admin dashboard.
pub const ADMIN_NAMESPACE: &str = "/ws/celery/tasks";
/// Packets socketioxide buffers per socket. While it is full, the socket's forwarder
/// waits and its messages stay in the hub's bounded queue, whose limits (degrade, then
/// close) decide when the socket is too slow.
const SOCKET_BUFFER: usize = 256;
/// Initial WebSocket read buffer per socket. Clients send only small control messages
/// (a bigger frame still gets room for its full length), and the buffer is zero-filled,
/// so all of it is resident for every idle connection: 512 B instead of 4 KiB.
const WS_READ_BUFFER: usize = 512;
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
pub fn layer(app: &PushState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SOCKET_BUFFER)
        .max_payload(MAX_POLLING_PAYLOAD)
        .ws_max_message_size(MAX_WS_MESSAGE)
        .ws_read_buffer_size(WS_READ_BUFFER)
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

/// Copies what engineioxide needs out of a Socket.IO request, dropping the rest.
///
/// engineioxide keeps each session's request parts until it closes, and their URI and
/// header values point into hyper's 16 KiB read buffer (as does axum's `OriginalUri`
/// extension), which so stays alive for every idle connection: about 8.6 KB of RSS
/// each. Copied out, the buffer is freed after the handshake. Vigil reads nothing else
/// from the request: the token comes in the Socket.IO `auth` payload.
pub async fn compact_request(req: Request) -> Request {
    if !req.uri().path().starts_with("/socket.io") {
        return req;
    }
    let (mut parts, body) = req.into_parts();
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    const KEPT: [HeaderName; 5] = [
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::UPGRADE,
        header::CONNECTION,
        header::CONTENT_TYPE,
    ];
    let mut headers = HeaderMap::with_capacity(KEPT.len());
    for name in KEPT {
        for value in parts.headers.get_all(&name) {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.append(name.clone(), v);
            }
        }
    }
    parts.headers = headers;
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    parts.extensions = http::Extensions::new();
    if let Some(upgrade) = upgrade {
        parts.extensions.insert(upgrade);
    }
    Request::from_parts(parts, body)
}

/// What a client may put in the handshake's `auth`.
#[derive(Debug, Default)]
struct Handshake {
    token: Option<String>,
    /// Resume after this sequence number (the last `seq` the client saw).
    since: Option<u64>,
    /// Rooms to be in from the start, so a resuming admin-namespace socket is replayed
    /// the events of its rooms.
    rooms: Vec<String>,
    /// `encoding: "msgpack"`: `batch_update` as MessagePack (gzip over 1 KiB).
    binary: bool,
}

impl Handshake {
    fn parse(auth: Option<&Value>) -> Result<Self, ApiError> {
        let Some(auth) = auth else {
            return Ok(Self::default());
        };
        let since = match auth.get("since") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(bad_since)?),
            Some(Value::String(s)) => Some(s.parse().map_err(|_| bad_since())?),
            Some(_) => return Err(bad_since()),
        };
        let rooms = match auth.get("rooms") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.len() <= rooms::MAX_ROOMS => a
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(bad_rooms)?,
            Some(_) => return Err(bad_rooms()),
        };
        let binary = match auth.get("encoding").and_then(Value::as_str) {
            None | Some("json") => false,
            Some("msgpack") => true,
            Some(other) => {
                return Err(ApiError::invalid_field(
                    "encoding",
                    format!("unsupported encoding `{other}` (json or msgpack)"),
                ))
            }
        };
        Ok(Self {
            token: auth.get("token").and_then(Value::as_str).map(str::to_owned),
            since,
            rooms,
            binary,
        })
    }
}

fn bad_since() -> ApiError {
    ApiError::invalid_field(
        "since",
        "since must be the last sequence number seen (a non-negative integer)",
    )
}

fn bad_rooms() -> ApiError {
    ApiError::invalid_field(
        "rooms",
        format!(
            "expected an array of at most {} room names",
            rooms::MAX_ROOMS
        ),
    )
}

/// Authenticates and subscribes before the socket counts as connected, so that once
/// the client sees `connect` it misses no event it may see, and an early `subscribe`
/// finds its handler. A resuming socket's missed events are read here too, and sent
/// before anything live.
async fn connect(
    s: &SocketRef,
    auth: Option<Value>,
    app: &PushState,
    scope: Scope,
) -> Result<(), ApiError> {
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
        .subscribe(spec)
        .await
        .ok_or_else(|| ApiError::unavailable("the server is shutting down"))?;
    let catchup = match hs.since {
        Some(since) => Some(resume::catch_up(app, &sub, since).await.map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
            ApiError::unavailable("the event log is unavailable")
        })?),
        None => None,
    };
    tracing::debug!(sid = %s.id, ns = s.ns(), user = claims.sub, subscriber = sub.id, "Socket.IO connect");
    let guard = app.metrics().connected(Transport::SocketIo);
    s.extensions.insert(Session::new(
        app.hub().clone(),
        app.metrics().clone(),
        sub,
        rooms,
        authorized,
        catchup,
        guard,
    ));
    messages::register(s, app.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn handshake_reads_token_cursor_rooms_and_encoding() {
        let hs = Handshake::parse(Some(&json!({
            "token": "t", "since": 42, "rooms": ["celery:tasks"], "encoding": "msgpack"
        })))
        .unwrap();
        assert_eq!(hs.token.as_deref(), Some("t"));
        assert_eq!(hs.since, Some(42));
        assert_eq!(hs.rooms, ["celery:tasks"]);
        assert!(hs.binary);
        assert_eq!(
            Handshake::parse(Some(&json!({ "since": "7" })))
                .unwrap()
                .since,
            Some(7)
        );
        for bad in [
            json!({ "since": -1 }),
            json!({ "since": "x" }),
            json!({ "rooms": "celery:tasks" }),
            json!({ "encoding": "xml" }),
        ] {
            assert_eq!(
                Handshake::parse(Some(&bad)).unwrap_err().status,
                422,
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn compact_request_keeps_what_the_handshake_needs_and_nothing_else() {
        let req = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(header::COOKIE, "a=b")
            .header(header::USER_AGENT, "x".repeat(4000))
            .extension(42u32)
            .body(axum::body::Body::empty())
            .unwrap();
        let req = compact_request(req).await;
        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(req.headers()[header::UPGRADE], "websocket");
        assert_eq!(
            req.headers()[header::SEC_WEBSOCKET_KEY],
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert_eq!(req.headers().len(), 2);
        assert!(req.extensions().get::<u32>().is_none());

        // Other paths pass untouched.
        let req = Request::builder()
            .uri("/api/v1/tasks")
            .header(header::COOKIE, "a=b")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(compact_request(req).await.headers()[header::COOKIE], "a=b");
    }
}
