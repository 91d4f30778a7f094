//! `GET /ws`: the native WebSocket. The server sends each event as one message (JSON
//! text, or MessagePack binary with `?encoding=msgpack`); its own control messages
//! (`connected`, `reset`, `degraded`, `auth-error`, answers) are always JSON text.
//!
//! The client may send (each answered; an `"id"` in the request is echoed in the answer):
//! - `{"type":"ping","timestamp":t}` → `{"type":"pong","timestamp":t}`
//! - `{"type":"subscribe","topics":[…],"queues":[…],"states":[…],"ids":[…]}` →
//!   `{"type":"subscribed",…}`: replaces the connection's filter
//! - `{"type":"refresh","token":"…"}` → `{"type":"refreshed","exp":…,"role":…}`: a fresh
//!   token for the same user keeps the connection past the old one's expiry
//! - anything else → `{"type":"error","code":…,"error":"…"}`; the connection stays.
//!
//! When the token expires: `{"type":"auth-error","code":"token_expired",…}`, then close
//! code 4001. Resume with `?since=<seq>`.
//!
//! The connection is `vigil_transport`'s WebSocket driver on the upgraded stream: what
//! the hub queues leaves with one `writev` per wake-up; pings come from the hub's one
//! heartbeat timer, and a client that answers none for [`MISSED_HEARTBEATS`] is closed.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::response::Response;
use http::{header, HeaderMap, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use vigil_core::error::ApiError;
use vigil_transport::conn::framing::{Framing, WebSocket};
use vigil_transport::conn::writer::with_gather;
use vigil_transport::eio::websocket::accept_key;
use vigil_transport::stream::websocket::{self as driver, Config};

use super::resume::Catchup;
use super::{Authorized, PushQuery};
use crate::hub::{Queue, Subscription, Wire};
use crate::metrics::{Metrics, Transport};
use crate::PushState;
use messages::Session;
use vigil_runtime::error::HttpError;

mod messages;

/// Largest message a client may send; client messages are small control messages.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Close code for "the token expired": reconnect with a fresh one and `?since=`.
const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Heartbeats a client may leave unanswered (no pong, no message) before it counts as
/// not reading: two, so one lost in a busy moment is forgiven.
const MISSED_HEARTBEATS: u32 = 2;

/// Authenticates, then upgrades.
pub async fn upgrade(
    State(app): State<PushState>,
    headers: HeaderMap,
    Query(query): Query<PushQuery>,
    mut req: Request,
) -> Result<Response, HttpError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let auth = super::authenticate(header, &query, app.verifier())?;
    super::spec(&auth.claims, &query, true)?; // refuse bad filters before upgrading
    let key = websocket_key(&headers)
        .map_err(|e| ApiError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded), app, auth, query).await,
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(key.as_bytes()))
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::internal(format!("building the upgrade: {e}")).into())
}

/// The client's `Sec-WebSocket-Key`, if the request is a WebSocket upgrade (RFC 6455).
fn websocket_key(headers: &HeaderMap) -> Result<String, &'static str> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err("`Connection: upgrade` and `Upgrade: websocket` headers needed");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err("`Sec-WebSocket-Version: 13` needed");
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or("`Sec-WebSocket-Key` header needed")
}

async fn serve(
    io: TokioIo<hyper::upgrade::Upgraded>,
    app: PushState,
    auth: Authorized,
    query: PushQuery,
) {
    let Ok(spec) = super::spec(&auth.claims, &query, true) else {
        return;
    };
    let Some(sub) = app.hub().subscribe(spec).await else {
        return;
    };
    let _guard = app.metrics().connected(Transport::WebSocket);
    let Some(first) = first_frames(&app, &sub, query.since).await else {
        return;
    };
    let (deadline, at) = watch::channel(auth.deadline());
    let watcher = tokio::spawn(watch_expiry(app.clone(), sub.queue.clone(), at));
    let config = Config {
        missed: MISSED_HEARTBEATS,
        max_message: MAX_CLIENT_MESSAGE,
    };
    let session = Session {
        app,
        auth,
        query,
        id: sub.id,
        queue: sub.queue.clone(),
        deadline,
    };
    let why = driver::run(io, &first, sub.queue.clone(), session, config).await;
    watcher.abort();
    tracing::debug!(subscriber = sub.id, why, "WebSocket connection ended");
}

/// `connected`, then what a resuming client missed (or a `reset`), as WebSocket frames;
/// `None` if the log cannot be read.
async fn first_frames(app: &PushState, sub: &Subscription, since: Option<u64>) -> Option<Vec<u8>> {
    let hello = json!({ "type": "connected", "subscriber": sub.id }).to_string();
    let mut first = vec![Wire::Text(hello.into())];
    if let Some(since) = since {
        match super::resume::catch_up(app, sub, since).await {
            Ok(Catchup::Replay { frames, .. }) => {
                first.extend(
                    frames
                        .into_iter()
                        .map(|payload| Wire::Payload { ns: 0, payload }),
                );
            }
            Ok(Catchup::Reset { seq }) => {
                let reset = json!({ "type": "reset", "seq": seq }).to_string();
                first.push(Wire::Text(reset.into()));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading the event log failed");
                return None;
            }
        }
    }
    Some(with_gather(|g| {
        first.iter().for_each(|m| WebSocket.frame(m, g));
        g.concat()
    }))
}

/// Ends the connection when its token expires; a refresh moves the deadline.
async fn watch_expiry(app: PushState, queue: Arc<Queue>, mut deadline: watch::Receiver<Instant>) {
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep_until(at) => return expire(&app, &queue),
            changed = deadline.changed() => if changed.is_err() { return },
        }
    }
}

/// The token ran out: `auth-error`, then close (code 4001).
fn expire(app: &PushState, queue: &Queue) {
    Metrics::inc(&app.metrics().expired);
    let mut body = super::auth_error(&super::token_expired());
    body["type"] = json!("auth-error");
    let end = Wire::End {
        ns: 0,
        code: CLOSE_TOKEN_EXPIRED,
        reason: "token expired".into(),
    };
    if queue
        .push_all_control([Wire::Text(body.to_string().into()), end])
        .is_err()
    {
        queue.close("token expired");
    }
}
