//! Engine.IO's WebSocket transport: the upgrade, then one task per connection
//! (`driver`) that reads the client's frames, writes everything the session's queue
//! holds with one `writev` per wake-up, and pings. A connection either starts a session
//! (no `sid`) or upgrades a long-polling one: it answers the `2probe`, and takes the
//! session over at `5`.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};

use super::driver;
use super::server::Refused;
use super::session::{Session, Transport};
use super::{Handler, Server};

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    B64.encode(sha.finalize())
}

/// Answers a WebSocket upgrade and runs the connection once upgraded: a new session,
/// or the upgrade of `session` (which must be long-polling).
pub fn upgrade<H: Handler, B: Send + 'static>(
    server: &Arc<Server<H>>,
    session: Option<Arc<Session<H>>>,
    mut req: Request<B>,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let is_ws = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| is_ws && version_ok)
    else {
        return Refused::BadRequest.response();
    };
    if session
        .as_ref()
        .is_some_and(|s| s.transport() != Transport::Polling)
    {
        return Refused::BadRequest.response();
    }
    let accept = accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let server = server.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => driver::run(server, session, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "Engine.IO WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::default())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_of_rfc_6455() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
