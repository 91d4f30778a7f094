//! The writing side: everything the session's queue holds, in one write.

use std::task::Context;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Driver;
use crate::conn::framing::{Framing, SocketIo};
use crate::conn::writer::with_gather;
use crate::conn::Outgoing;
use crate::eio::Handler;
use crate::wire::ws;

/// Queued messages written per wake-up at most (each is at most four slices).
const MAX_BATCH: usize = 128;

thread_local! {
    /// The messages of one write, reused by every connection on the thread.
    static BATCH: std::cell::RefCell<Vec<Outgoing>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<H: Handler, IO: AsyncRead + AsyncWrite + Unpin> Driver<H, IO> {
    /// Writes what the queue holds; a closed queue ends the session, its client told.
    pub(super) fn write_queued(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
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
}
