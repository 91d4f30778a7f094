//! One WebSocket connection of an Engine.IO session, on any byte stream (a TCP stream,
//! hyper's upgraded connection): one task whose `poll` reads, writes and pings,
//! whichever is ready. [`read`] handles the client's frames (and the upgrade probe),
//! [`write`] sends what the session's queue holds.

mod read;
mod write;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use super::packet;
use super::session::{Session, Transport};
use super::{Handler, Server};
use crate::conn::writer::{with_gather, Writer};
use crate::conn::Outgoing;
use crate::wire::ws::{self, Reader};

/// How long a client told its sockets were ended may take to close the connection
/// itself (it does once its last socket is gone) before the server closes it.
const FAREWELL_GRACE: Duration = Duration::from_secs(1);
/// Rounds of reading and writing one wake-up may do before yielding to other tasks.
const MAX_ROUNDS: usize = 16;

/// Serves `io` as the WebSocket of `session` (an upgrade) or of a new session.
pub async fn run<H: Handler, IO: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server<H>>,
    session: Option<Arc<Session<H>>>,
    io: IO,
) {
    Driver::start(server, session, io).await;
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
            self.timer.as_mut().reset(next);
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
