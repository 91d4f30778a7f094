//! Engine.IO's WebSocket transport: one task per connection that reads the client's
//! frames, writes everything the session's queue holds with one `writev` per wake-up,
//! and pings. A connection either starts a session (no `sid`) or upgrades a
//! long-polling one: it answers the `2probe`, and takes the session over at `5`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

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
const FAREWELL_GRACE: Duration = Duration::from_secs(1);
/// Rounds of reading and writing one wake-up may do before yielding to other tasks.
const MAX_ROUNDS: usize = 16;

thread_local! {
    /// The messages of one write, reused by every connection on the thread.
    static BATCH: std::cell::RefCell<Vec<Outgoing>> = const { std::cell::RefCell::new(Vec::new()) };
}

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
            Ok(upgraded) => Driver::start(server, session, TokioIo::new(upgraded)).await,
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

/// The heartbeat's next step.
enum Beat {
    /// Ping when the timer fires.
    Ping,
    /// Pinged at this instant; the client must have answered when the timer fires.
    Pong(Instant),
}

/// One WebSocket connection, on any byte stream (a TCP stream, hyper's upgraded
/// connection). Reading, writing and the heartbeat share one task: its `poll` does
/// whichever is ready, so a connection is one small future and nothing else.
struct Driver<H: Handler, IO> {
    server: Arc<Server<H>>,
    session: Arc<Session<H>>,
    io: IO,
    /// Client bytes not yet a whole frame (empty, unallocated, most of the time).
    buf: BytesMut,
    reader: Reader,
    writer: Writer,
    /// Upgrading a long-polling session: the session is not this connection's yet.
    probing: bool,
    beat: Beat,
    timer: Pin<Box<Sleep>>,
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

impl<H: Handler, IO: AsyncRead + AsyncWrite + Unpin> Driver<H, IO> {
    async fn start(server: Arc<Server<H>>, session: Option<Arc<Session<H>>>, io: IO) {
        let probing = session.is_some();
        let session = session.unwrap_or_else(|| server.create(Transport::WebSocket));
        let timer = Box::pin(tokio::time::sleep(server.config.ping_interval));
        let mut d = Driver {
            server,
            session,
            io,
            buf: BytesMut::new(),
            reader: Reader::default(),
            writer: Writer::default(),
            probing,
            beat: Beat::Ping,
            timer,
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
            let _ = d.session.queue.push_control(Outgoing::Text(open.into()));
        }
        match std::future::poll_fn(|cx| d.poll_run(cx)).await {
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

    /// Does whatever is ready: reads, writes the backlog or the queue, pings.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        for _ in 0..MAX_ROUNDS {
            match self.round(cx) {
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
                Err(reason) => return Poll::Ready(self.end(reason)),
            }
        }
        // Busy: let other connections run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One round; `Ok(true)` if anything happened.
    fn round(&mut self, cx: &mut Context<'_>) -> Result<bool, String> {
        let mut busy = false;
        if let Poll::Ready(r) = self.poll_read(cx) {
            r?;
            busy = true;
        }
        if self.writer.is_blocked() {
            if let Poll::Ready(r) = self.writer.poll_flush(&mut self.io, cx) {
                r.map_err(|e| format!("write failed: {e}"))?;
                busy = true;
            }
        }
        if !self.probing
            && !self.writer.is_blocked()
            && self.session.queue.poll_ready(cx).is_ready()
        {
            self.write_queued(cx)?;
            busy = true;
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            let next = self.heartbeat()?;
            self.timer.as_mut().reset(next.into());
            busy = true;
        }
        Ok(busy)
    }

    /// How a connection that must stop ends: a probe leaves the session alone.
    fn end(&self, reason: String) -> End {
        if self.probing {
            End::Probe
        } else {
            End::Session(reason)
        }
    }

    /// Waits (briefly) for the client to close after the DISCONNECTs, then closes. A
    /// close frame right after them could overtake them: the client handles a
    /// Socket.IO packet a tick after its frame.
    async fn linger(&mut self) {
        let closed = std::future::poll_fn(|cx| loop {
            match self.poll_read_raw(cx) {
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        });
        let _ = tokio::time::timeout(FAREWELL_GRACE, closed).await;
        let frame = ws::close_frame(ws::CLOSE_NORMAL, "");
        std::future::poll_fn(|cx| {
            self.send(cx, frame.clone());
            Poll::Ready(())
        })
        .await;
    }

    /// Writes one ready frame now (the transport's own replies), after any backlog.
    fn send(&mut self, cx: &mut Context<'_>, frame: Vec<u8>) {
        if self.writer.is_blocked() {
            self.writer.queue_after(&frame);
            return;
        }
        let frame = Bytes::from(frame);
        let (io, writer) = (&mut self.io, &mut self.writer);
        with_gather(|g| {
            g.shared(&frame);
            if let Err(e) = writer.write(io, cx, g) {
                tracing::debug!(error = %e, "Engine.IO WebSocket write failed");
            }
        });
    }

    /// Reads once into `buf`: `Some(n)` bytes, `None` at the end or on an error.
    fn poll_read_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<usize>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut rb = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                self.buf.extend_from_slice(rb.filled());
                Poll::Ready(Some(rb.filled().len()))
            }
            Poll::Ready(Err(_)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reads what the connection has and handles every complete message.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        match self.poll_read_raw(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(Err("transport close".into())),
            Poll::Ready(Some(_)) => {}
        }
        let max = self.server.config.max_payload;
        loop {
            match self.reader.next(&mut self.buf, max) {
                Ok(Some(msg)) => {
                    if let Err(e) = self.on_message(cx, msg) {
                        return Poll::Ready(Err(e));
                    }
                }
                Ok(None) => break,
                Err(Violation { code, reason }) => {
                    self.send(cx, ws::close_frame(code, reason));
                    return Poll::Ready(Err(format!("protocol error: {reason}")));
                }
            }
        }
        if self.buf.is_empty() {
            self.buf = BytesMut::new(); // give the read buffer back between messages
        }
        Poll::Ready(Ok(()))
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Incoming) -> Result<(), String> {
        let packet = match msg {
            Incoming::Text(text) => packet::decode(text.freeze()).map_err(|e| e.0)?,
            Incoming::Binary(bytes) => Packet::Binary(bytes.freeze()),
            Incoming::Ping(p) => {
                self.send(cx, ws::frame(ws::PONG, &p));
                return Ok(());
            }
            Incoming::Pong => return Ok(()),
            Incoming::Close(_) => {
                self.send(cx, ws::close_frame(ws::CLOSE_NORMAL, ""));
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
                self.send(cx, ws::frame(ws::TEXT, packet::PONG_PROBE));
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
    fn write_queued(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        BATCH.with(|batch| {
            let mut batch = batch.borrow_mut();
            batch.clear();
            let r = self.write_batch(cx, &mut batch);
            batch.clear();
            r
        })
    }

    fn write_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut Vec<Outgoing>,
    ) -> Result<(), String> {
        if self.session.queue.try_drain(batch, MAX_BATCH) == Some(0) {
            let reason = self.session.queue.closed().unwrap_or_default();
            for packet in self.session.farewell() {
                self.send(cx, ws::frame(ws::TEXT, &packet));
                self.farewell = true;
            }
            if !self.farewell {
                self.send(cx, ws::close_frame(ws::CLOSE_NORMAL, &reason));
            }
            return Err(reason);
        }
        let framing = SocketIo {
            namespaces: self.session.prefixes(),
        };
        let (io, writer) = (&mut self.io, &mut self.writer);
        with_gather(|g| {
            for item in batch.iter() {
                framing.frame(item, g);
            }
            writer.write(io, cx, g)
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
