//! Engine.IO's WebSocket transport: one task per connection that reads the client's
//! frames, writes everything the session's queue holds with one `writev` per wake-up,
//! and pings. A connection either starts a session (no `sid`) or upgrades a
//! long-polling one: it answers the `2probe`, and takes the session over at `5`.

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::net::TcpStream;

use super::packet::{self, Packet};
use super::server::Refused;
use super::session::{Session, Transport};
use super::{Handler, Server};
use crate::conn::framing::{Framing, SocketIo};
use crate::conn::writer::{with_gather, Writer};
use crate::conn::Outgoing;
use crate::wire::ws::{self, Incoming, Reader, Violation};

/// Queued messages written per wake-up at most (each is at most four slices).
const MAX_BATCH: usize = 128;
/// Bytes read per `read` call; a client's messages are small.
const READ_CHUNK: usize = 4096;
/// How long a client told its sockets were ended may take to close the connection
/// itself (it does once its last socket is gone) before the server closes it.
const FAREWELL_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

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
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "Engine.IO WebSocket upgrade failed"),
        };
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            return tracing::error!("Engine.IO WebSocket: the connection is not a TCP stream");
        };
        let tcp = parts.io.into_inner();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&parts.read_buf);
        Driver::start(server, session, tcp, buf).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::default())
        .unwrap_or_default()
}

/// The heartbeat's next step.
enum Beat {
    /// Ping when the timer fires.
    Ping,
    /// Pinged at this instant; the client must have answered when the timer fires.
    Pong(Instant),
}

/// One WebSocket connection.
struct Driver<H: Handler> {
    server: Arc<Server<H>>,
    session: Arc<Session<H>>,
    tcp: TcpStream,
    /// Client bytes not yet a whole frame (empty, unallocated, most of the time).
    buf: BytesMut,
    reader: Reader,
    writer: Writer,
    /// Upgrading a long-polling session: the session is not this connection's yet.
    probing: bool,
    beat: Beat,
    /// DISCONNECTs were sent: the client closes the connection once it handled them.
    farewell: bool,
}

/// How the connection ends.
enum End {
    /// The session goes on (an upgrade probe that failed): just drop the socket.
    Probe,
    /// The session ends, for this reason.
    Session(String),
}

impl<H: Handler> Driver<H> {
    async fn start(
        server: Arc<Server<H>>,
        session: Option<Arc<Session<H>>>,
        tcp: TcpStream,
        buf: BytesMut,
    ) {
        let probing = session.is_some();
        let session = session.unwrap_or_else(|| server.create(Transport::WebSocket));
        let mut d = Driver {
            server,
            session,
            tcp,
            buf,
            reader: Reader::default(),
            writer: Writer::default(),
            probing,
            beat: Beat::Ping,
            farewell: false,
        };
        if !probing {
            let c = &d.server.config;
            let open = packet::open(
                &d.session.sid,
                false,
                c.ping_interval.as_millis() as u64,
                c.ping_timeout.as_millis() as u64,
                c.max_payload,
            );
            d.send(ws::frame(ws::TEXT, open.as_bytes()));
        }
        match d.run().await {
            End::Probe => {
                // Back to long-polling if the probe got that far.
                d.session.switch(Transport::Upgrading, Transport::Polling);
            }
            End::Session(reason) => {
                d.session.close(&d.server, &reason);
                if d.farewell {
                    d.linger().await;
                }
            }
        }
    }

    /// Waits (briefly) for the client to close after the DISCONNECTs, then closes. A
    /// close frame right after them could overtake them: the client handles a
    /// Socket.IO packet a tick after its frame.
    async fn linger(&mut self) {
        let closed = async { while self.tcp.readable().await.is_ok() && self.discard() {} };
        let _ = tokio::time::timeout(FAREWELL_GRACE, closed).await;
        self.send(ws::close_frame(ws::CLOSE_NORMAL, ""));
    }

    /// Reads and drops what the client sent; `false` once it closed.
    fn discard(&self) -> bool {
        let mut sink = [0u8; READ_CHUNK];
        match self.tcp.try_read(&mut sink) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    async fn run(&mut self) -> End {
        let interval = self.server.config.ping_interval;
        let timer = tokio::time::sleep(interval);
        tokio::pin!(timer);
        loop {
            let live = !self.probing;
            let blocked = self.writer.is_blocked();
            tokio::select! {
                biased;
                r = self.tcp.readable() => {
                    if let Err(end) = r.map_err(|e| e.to_string()).and_then(|()| self.read()) {
                        return self.end(end);
                    }
                }
                r = self.tcp.writable(), if blocked => {
                    if let Err(e) = r.and_then(|()| self.writer.flush(&self.tcp)) {
                        return self.end(format!("write failed: {e}"));
                    }
                }
                () = std::future::poll_fn(|cx| self.session.queue.poll_ready(cx)), if live && !blocked => {
                    if let Err(end) = self.write_queued() {
                        return self.end(end);
                    }
                }
                () = &mut timer => {
                    let next = self.heartbeat();
                    match next {
                        Ok(at) => timer.as_mut().reset(at.into()),
                        Err(end) => return self.end(end),
                    }
                }
            }
        }
    }

    /// How a connection that must stop ends: a probe leaves the session alone.
    fn end(&self, reason: String) -> End {
        if self.probing {
            End::Probe
        } else {
            End::Session(reason)
        }
    }

    /// Writes one ready frame now (replies of the transport itself).
    fn send(&mut self, frame: Vec<u8>) {
        let frame = Bytes::from(frame);
        let tcp = &self.tcp;
        let writer = &mut self.writer;
        with_gather(|g| {
            g.shared(&frame);
            if writer.is_blocked() {
                // Behind a backlog already: it waits its turn (rare: replies are small).
                return;
            }
            if let Err(e) = writer.write(tcp, g) {
                tracing::debug!(error = %e, "Engine.IO WebSocket write failed");
            }
        });
    }

    /// Reads what the socket has and handles every complete message.
    fn read(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; READ_CHUNK];
        match self.tcp.try_read(&mut chunk) {
            Ok(0) => return Err("transport close".into()),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(format!("transport error: {e}")),
        }
        let max = self.server.config.max_payload;
        loop {
            match self.reader.next(&mut self.buf, max) {
                Ok(Some(msg)) => self.on_message(msg)?,
                Ok(None) => break,
                Err(Violation { code, reason }) => {
                    self.send(ws::close_frame(code, reason));
                    return Err(format!("protocol error: {reason}"));
                }
            }
        }
        if self.buf.is_empty() {
            self.buf = BytesMut::new(); // give the read buffer back between messages
        }
        Ok(())
    }

    fn on_message(&mut self, msg: Incoming) -> Result<(), String> {
        let packet = match msg {
            Incoming::Text(text) => packet::decode(text.freeze()).map_err(|e| e.0)?,
            Incoming::Binary(bytes) => Packet::Binary(bytes.freeze()),
            Incoming::Ping(p) => {
                self.send(ws::frame(ws::PONG, &p));
                return Ok(());
            }
            Incoming::Pong => return Ok(()),
            Incoming::Close(_) => {
                self.send(ws::close_frame(ws::CLOSE_NORMAL, ""));
                return Err("transport close".into());
            }
        };
        match (self.probing, packet) {
            (true, Packet::PingProbe) => {
                if !self
                    .session
                    .switch(Transport::Polling, Transport::Upgrading)
                {
                    return Err("upgrade of a session that is not long-polling".into());
                }
                self.send(ws::frame(ws::TEXT, packet::PONG_PROBE));
                self.session.queue.wake(); // the waiting poll answers `noop`
                Ok(())
            }
            (true, Packet::Upgrade) => {
                if !self
                    .session
                    .switch(Transport::Upgrading, Transport::WebSocket)
                {
                    return Err("upgrade without a probe".into());
                }
                self.probing = false;
                self.session.queue.wake();
                Ok(())
            }
            (true, _) => Err("a message before the upgrade completed".into()),
            (false, p) => self.session.receive(&self.server, p),
        }
    }

    /// Writes what the queue holds; a closed queue ends the session, its client told.
    fn write_queued(&mut self) -> Result<(), String> {
        let mut batch = Vec::new();
        if self.session.queue.try_drain(&mut batch, MAX_BATCH) == Some(0) {
            let reason = self.session.queue.closed().unwrap_or_default();
            for packet in self.session.farewell() {
                self.send(ws::frame(ws::TEXT, &packet));
                self.farewell = true;
            }
            if !self.farewell {
                self.send(ws::close_frame(ws::CLOSE_NORMAL, &reason));
            }
            return Err(reason);
        }
        let framing = SocketIo {
            namespaces: self.session.prefixes(),
        };
        let (tcp, writer) = (&self.tcp, &mut self.writer);
        with_gather(|g| {
            for item in &batch {
                framing.frame(item, g);
            }
            writer.write(tcp, g)
        })
        .map_err(|e| format!("write failed: {e}"))
    }

    /// One heartbeat step; when the timer should fire next.
    fn heartbeat(&mut self) -> Result<Instant, String> {
        let c = &self.server.config;
        let now = Instant::now();
        if self.probing {
            return Ok(now + c.ping_interval); // the long-polling side still pings
        }
        match self.beat {
            Beat::Ping => {
                let _ = self
                    .session
                    .queue
                    .push_control(Outgoing::Text(Bytes::from_static(packet::PING)));
                self.beat = Beat::Pong(now);
                Ok(now + c.ping_timeout)
            }
            Beat::Pong(pinged) if self.session.seen() >= pinged => {
                self.beat = Beat::Ping;
                Ok(pinged + c.ping_interval)
            }
            Beat::Pong(_) => Err("ping timeout".into()),
        }
    }
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
