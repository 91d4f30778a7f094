//! One connection's way out, the same for every transport: the hub puts shared
//! [`payload::Payload`]s in the connection's bounded [`queue::Queue`], and its
//! [`writer`] sends everything queued with one `writev` per wake-up, framed by the
//! transport ([`framing`]).

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
