//! The writing side: everything the session's queue holds, in one write.

use std::task::Context;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Driver;
use crate::conn::framing::{Framing, SocketIo};
use crate::conn::writer::with_gather;
use crate::conn::{with_drained, Outgoing};
use crate::eio::Handler;
use crate::wire::ws;

impl<H: Handler, IO: AsyncRead + AsyncWrite + Unpin> Driver<H, IO> {
    /// Writes what the queue holds; a closed queue ends the session, its client told.
    pub(super) fn write_queued(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        let framing = SocketIo {
            namespaces: self.session.prefixes(),
        };
        let (io, writer, session, server) =
            (&mut self.io, &mut self.writer, &self.session, &self.server);
        let written = with_drained(&session.queue, |batch| {
            with_gather(|g| {
                for item in batch {
                    framing.frame(item, g);
                }
                writer.write(io, cx, g)
            })
            .map_err(|e| format!("write failed: {e}"))?;
            for item in batch {
                if let Outgoing::End { ns, reason, .. } = item {
                    session.leave_slot(server, *ns, reason);
                }
            }
            Ok(())
        });
        match written {
            Some(r) => r,
            None => Err(self.farewell(cx)),
        }
    }

    /// The queue closed: the client is told (a DISCONNECT per socket, or a close
    /// frame); the reason it closed for.
    fn farewell(&mut self, cx: &mut Context<'_>) -> String {
        let reason = self.session.queue.closed().unwrap_or_default();
        for packet in self.session.farewell() {
            self.send(cx, ws::frame(ws::TEXT, &packet));
            self.farewell = true;
        }
        if !self.farewell {
            self.send(cx, ws::close_frame(ws::CLOSE_NORMAL, &reason));
        }
        reason
    }
}
