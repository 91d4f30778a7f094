//! A native WebSocket stream, on any byte stream (a TCP stream, hyper's upgraded
//! connection): one task whose `poll` reads the client's frames, writes everything the
//! connection's queue holds with one `writev` per wake-up, and answers heartbeats.
//!
//! The client's text messages go to the application ([`Messages`]) one at a time: the
//! next is not read until the last was handled, so answers keep the requests' order and
//! a client that floods gets back-pressure, not a growing buffer. Heartbeats come
//! through the queue ([`Outgoing::Heartbeat`]): the connection has no timer of its own.
//! A client that sent nothing (a pong included) before [`Config::missed`] heartbeats in
//! a row does
//! not read, and is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::MAX_ROUNDS;
use crate::conn::framing::{Framing, WebSocket};
use crate::conn::queue::Queue;
use crate::conn::writer::{with_gather, Writer};
use crate::conn::{with_drained, Outgoing};
use crate::wire::ws::{self, Incoming, Reader, Violation};

/// Bytes read per `read` call; a client's messages are small.
const READ_CHUNK: usize = 4096;

/// Close code for "the server ended this subscription" (application range).
pub const CLOSE_SUBSCRIPTION_ENDED: u16 = 4000;

/// What the application does with a client's text messages.
pub trait Messages: Send + Sized + 'static {
    /// Handles one message (answers go into the queue); resolves to the handler for the
    /// next one.
    fn text(self, text: Bytes) -> Pin<Box<dyn Future<Output = Self> + Send>>;
}

/// A connection's limits.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Heartbeats a client may leave unanswered (no pong, no message) before it counts
    /// as not reading.
    pub missed: u32,
    /// Largest message a client may send.
    pub max_message: usize,
}

/// Serves `io` as a WebSocket: `first` (frames made before it started, e.g. a
/// resumed client's replay), then what comes from `queue`; returns why it ended.
pub async fn run<IO, M>(
    io: IO,
    first: &[u8],
    queue: Arc<Queue<Outgoing>>,
    messages: M,
    config: Config,
) -> String
where
    IO: AsyncRead + AsyncWrite + Unpin,
    M: Messages,
{
    let mut writer = Writer::default();
    writer.queue_after(first);
    let mut d = Driver {
        io,
        queue,
        buf: BytesMut::new(),
        reader: Reader::default(),
        writer,
        idle: Some(messages),
        busy: None,
        heard: false,
        unanswered: 0,
        config,
        ending: None,
    };
    std::future::poll_fn(|cx| d.poll_run(cx)).await
}

struct Driver<IO, M> {
    io: IO,
    queue: Arc<Queue<Outgoing>>,
    /// Client bytes not yet handled (empty, unallocated, most of the time).
    buf: BytesMut,
    reader: Reader,
    writer: Writer,
    /// The handler, while no message is being handled.
    idle: Option<M>,
    busy: Option<Pin<Box<dyn Future<Output = M> + Send>>>,
    /// The client sent something (a pong included) since the last heartbeat.
    heard: bool,
    /// Heartbeats in a row with nothing heard before them.
    unanswered: u32,
    config: Config,
    /// Set once the connection is to end (after what is being written): why.
    ending: Option<String>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin, M: Messages> Driver<IO, M> {
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<String> {
        for _ in 0..MAX_ROUNDS {
            match self.round(cx) {
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
                Err(reason) => return Poll::Ready(reason),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One round; `Ok(true)` if anything happened, `Err(why)` once done.
    fn round(&mut self, cx: &mut Context<'_>) -> Result<bool, String> {
        let mut busy = self.poll_handler(cx)?;
        if self.ending.is_none() && self.idle.is_some() {
            busy |= self.poll_read(cx)?;
        }
        if self.writer.is_blocked() {
            return match self.writer.poll_flush(&mut self.io, cx) {
                Poll::Ready(Ok(())) => Ok(true),
                Poll::Ready(Err(e)) => Err(format!("write failed: {e}")),
                Poll::Pending => Ok(busy),
            };
        }
        if let Some(why) = self.ending.take() {
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            return Err(why);
        }
        if self.queue.poll_ready(cx).is_ready() {
            self.write_queued(cx)?;
            busy = true;
        }
        Ok(busy)
    }

    /// Polls the message being handled; once done, handles what else was read.
    fn poll_handler(&mut self, cx: &mut Context<'_>) -> Result<bool, String> {
        if self.busy.is_none() {
            return Ok(false);
        }
        self.handle_buffered(cx)?;
        Ok(self.busy.is_none())
    }

    /// Reads what the connection has and handles the complete frames.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, String> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut rb = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(false),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return Err("client closed".into()),
            Poll::Ready(Err(e)) => return Err(format!("read failed: {e}")),
            Poll::Ready(Ok(())) => self.buf.extend_from_slice(rb.filled()),
        }
        self.heard = true;
        self.handle_buffered(cx)?;
        Ok(true)
    }

    /// Handles buffered frames, one application message at a time: stops while one is
    /// being handled (its waker registered).
    fn handle_buffered(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        while self.ending.is_none() {
            if let Some(f) = self.busy.as_mut() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(m) => {
                        self.busy = None;
                        self.idle = Some(m);
                    }
                    Poll::Pending => break,
                }
            }
            match self.reader.next(&mut self.buf, self.config.max_message) {
                Ok(Some(Incoming::Text(text))) => {
                    let m = self.idle.take().ok_or("no message handler")?;
                    self.busy = Some(m.text(text.freeze()));
                }
                Ok(Some(Incoming::Binary(_) | Incoming::Pong)) => {} // nothing to answer
                Ok(Some(Incoming::Ping(p))) => self.send(cx, &ws::frame(ws::PONG, &p)),
                Ok(Some(Incoming::Close(_))) => {
                    self.send(cx, &ws::close_frame(ws::CLOSE_NORMAL, ""));
                    self.ending = Some("client closed".into());
                }
                Ok(None) => break,
                Err(Violation { code, reason }) => {
                    self.send(cx, &ws::close_frame(code, reason));
                    self.ending = Some(format!("protocol error: {reason}"));
                }
            }
        }
        if self.buf.is_empty() {
            self.buf = BytesMut::new(); // give the read buffer back between messages
        }
        Ok(())
    }

    /// Writes what the queue holds: up to an End, after which the connection ends; a
    /// heartbeat of a client that answers none closes it instead.
    fn write_queued(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        let missed = self.config.missed;
        let (io, writer) = (&mut self.io, &mut self.writer);
        let (heard, unanswered) = (&mut self.heard, &mut self.unanswered);
        let ending = with_drained(&self.queue, |batch| {
            let mut ending = None;
            let r = with_gather(|g| {
                for item in batch {
                    match item {
                        Outgoing::Heartbeat => {
                            *unanswered = if std::mem::take(heard) {
                                0
                            } else {
                                *unanswered + 1
                            };
                            if *unanswered < missed {
                                WebSocket.frame(item, g);
                            } else {
                                let why = "slow consumer: no answer to heartbeats";
                                g.head(&ws::close_frame(CLOSE_SUBSCRIPTION_ENDED, why));
                                ending = Some(why.to_owned());
                            }
                        }
                        Outgoing::End { reason, .. } => {
                            WebSocket.frame(item, g);
                            ending = Some(reason.to_string());
                        }
                        _ => WebSocket.frame(item, g),
                    }
                    if ending.is_some() {
                        break;
                    }
                }
                writer.write(io, cx, g)
            });
            r.map(|()| ending)
        });
        match ending {
            None => {
                let why = self.queue.closed().unwrap_or_default();
                self.send(cx, &ws::close_frame(CLOSE_SUBSCRIPTION_ENDED, &why));
                self.ending = Some(why);
                Ok(())
            }
            Some(Err(e)) => Err(format!("write failed: {e}")),
            Some(Ok(ending)) => {
                self.ending = ending;
                Ok(())
            }
        }
    }

    /// Writes one frame of the connection's own now (pongs, closes), after any backlog.
    fn send(&mut self, cx: &mut Context<'_>, frame: &[u8]) {
        if self.writer.is_blocked() {
            self.writer.queue_after(frame);
            return;
        }
        let frame = Bytes::copy_from_slice(frame);
        let (io, writer) = (&mut self.io, &mut self.writer);
        with_gather(|g| {
            g.shared(&frame);
            if let Err(e) = writer.write(io, cx, g) {
                tracing::debug!(error = %e, "WebSocket write failed");
            }
        });
    }
}

#[cfg(test)]
mod tests;
