//! One connection's way out, the same for every transport: the hub puts shared
//! [`payload::Payload`]s in the connection's bounded [`queue::Queue`], and its
//! [`writer`] sends everything queued with one `writev` per wake-up, framed by the
//! transport ([`framing`]). A connection that is not a protocol session of its own
//! (SSE, the native WebSocket) is driven by [`crate::stream`].

pub mod framing;
pub mod payload;
pub mod queue;
pub mod writer;

use std::sync::Arc;

use bytes::Bytes;

use self::payload::Payload;

/// One queued message.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A payload the hub decided this connection gets; `ns` is the Socket.IO namespace
    /// slot it is for (0 on the other transports).
    Payload {
        /// Namespace slot.
        ns: u8,
        /// The shared payload.
        payload: Arc<Payload>,
    },
    /// A whole text message of the transport, made by the connection itself: an SSE
    /// message, a WebSocket text message, an Engine.IO packet (`2`, `40{…}`, `43[…]`).
    Text(Bytes),
    /// A whole binary message (a WebSocket binary message, an Engine.IO attachment).
    Binary(Bytes),
    /// Bytes written as they are (e.g. a WebSocket close frame).
    Raw(Bytes),
    /// Time for a heartbeat: SSE writes a comment, the native WebSocket a ping (once it
    /// checked the client answered the last ones). Socket.IO has its own and skips it.
    Heartbeat,
    /// Nothing more for socket `ns`: SSE and the native WebSocket end the connection
    /// (a WebSocket with close `code` and `reason`), Socket.IO ends that namespace's
    /// socket with a DISCONNECT. What was queued before it is sent first.
    End {
        /// Namespace slot (0 on SSE and the native WebSocket).
        ns: u8,
        /// WebSocket close code.
        code: u16,
        /// Why, for the close frame.
        reason: Arc<str>,
    },
}

/// Queued messages handed to a writer per wake-up at most (each is a few slices).
pub const MAX_BATCH: usize = 128;

thread_local! {
    /// The messages of one write, reused by every connection on the thread.
    static BATCH: std::cell::RefCell<Vec<Outgoing>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with up to [`MAX_BATCH`] messages taken off `queue` (none waiting: an
/// empty slice); `None` once the queue is closed and empty. `f` must not re-enter.
pub fn with_drained<R>(
    queue: &queue::Queue<Outgoing>,
    f: impl FnOnce(&[Outgoing]) -> R,
) -> Option<R> {
    BATCH.with(|batch| {
        let mut batch = batch.borrow_mut();
        batch.clear();
        let closed = queue.try_drain(&mut batch, MAX_BATCH) == Some(0);
        let out = (!closed).then(|| f(&batch));
        batch.clear();
        out
    })
}

impl Outgoing {
    /// The sequence number of the event inside (0 for the connection's own messages).
    pub fn seq(&self) -> u64 {
        match self {
            Self::Payload { payload, .. } => payload.seq,
            _ => 0,
        }
    }
}
