//! The reading side: the client's frames, the upgrade probe, and everything else handed
//! to the session.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Driver;
use crate::eio::packet::{self, Packet};
use crate::eio::session::Transport;
use crate::eio::Handler;
use crate::wire::ws::{self, Incoming, Violation};

/// Bytes read per `read` call; a client's messages are small.
pub(super) const READ_CHUNK: usize = 4096;

impl<H: Handler, IO: AsyncRead + AsyncWrite + Unpin> Driver<H, IO> {
    /// Reads once into `buf`: `Some(n)` bytes, `None` at the end or on an error.
    pub(super) fn poll_read_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<usize>> {
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
    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
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
}
