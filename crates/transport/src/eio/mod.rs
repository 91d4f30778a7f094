//! Engine.IO v4 and Socket.IO v5, as the official `socket.io-client` speaks them.
//!
//! One Engine.IO session per client connection, on the WebSocket transport or HTTP
//! long-polling (upgraded to WebSocket when the client probes it), with the server's
//! heartbeat. Over it, Socket.IO sockets, one per namespace the client joins, each
//! with acknowledgements and binary attachments. All of a session's outgoing messages
//! go through one bounded [`crate::conn::queue::Queue`]: the application (the hub)
//! pushes shared payloads into it, and whichever transport serves the session drains
//! it — the WebSocket writes everything queued with one `writev` per wake-up, a
//! long-polling request takes it as its response.
//!
//! - [`packet`], [`sio`]: the packets of both layers.
//! - [`session`]: one session: its sockets and what each client packet does.
//! - [`server`]: the sessions, the handshake and the HTTP entry point.
//! - [`polling`], [`websocket`]: the two transports (a WebSocket connection's task is
//!   `driver`).
//!
//! The application implements [`Handler`]: it accepts or refuses each namespace join
//! and answers events; [`SocketRef`] is its handle on one socket.

mod driver;
pub mod packet;
pub mod polling;
pub mod server;
pub mod session;
pub mod sio;
pub mod websocket;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::conn::queue::{Full, Queue};
use crate::conn::Outgoing;

pub use server::Server;
pub use session::Session;

/// The limits and timings of a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often the server pings each session.
    pub ping_interval: Duration,
    /// How long it waits for the pong before closing the session.
    pub ping_timeout: Duration,
    /// Largest long-polling body and WebSocket message a client may send.
    pub max_payload: usize,
    /// Messages queued per session before it counts as a slow consumer.
    pub queue_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // Socket.IO's defaults.
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            // Clients send small control messages only.
            max_payload: 64 * 1024,
            queue_capacity: 1024,
        }
    }
}

/// Why a namespace join was refused: the client's `connect_error` gets `message` (and
/// `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Shown as the error's message.
    pub message: String,
    /// Extra details, if any.
    pub data: Option<Value>,
}

/// One event a client emitted.
#[derive(Debug)]
pub struct Event {
    /// Its name.
    pub name: String,
    /// The arguments after the name.
    pub args: Vec<Value>,
    /// Binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
    /// Set when the client wants an answer.
    pub ack: Option<AckSender>,
}

/// What the application does with sockets. Every method runs on its own task; a
/// socket's events may be handled concurrently.
pub trait Handler: Send + Sync + 'static {
    /// What the application keeps per socket.
    type Socket: Send + Sync + 'static;

    /// A client joins `socket`'s namespace with `auth` (the CONNECT payload). `Ok`
    /// accepts: the client gets its `connect` after this returns.
    fn connect(
        &self,
        socket: &SocketRef,
        auth: Option<Value>,
    ) -> impl Future<Output = Result<Self::Socket, Refusal>> + Send;

    /// The client was sent its `connect` for `socket` (queued): what the socket is sent
    /// first may be queued now, after it.
    fn connected(
        &self,
        socket: &SocketRef,
        state: &Arc<Self::Socket>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (socket, state);
        async {}
    }

    /// An event from a connected socket.
    fn event(
        &self,
        socket: SocketRef,
        state: Arc<Self::Socket>,
        event: Event,
    ) -> impl Future<Output = ()> + Send;

    /// The socket is gone: the client left the namespace, the session closed, or the
    /// server ended it. `reason` says which.
    fn disconnect(&self, socket: &SocketRef, state: &Self::Socket, reason: &str);
}

/// The application's handle on one socket (one namespace of one session).
#[derive(Debug, Clone)]
pub struct SocketRef {
    queue: Arc<Queue<Outgoing>>,
    ns: Arc<str>,
    slot: u8,
    sid: Arc<str>,
}

impl SocketRef {
    /// The session's queue: the hub pushes [`Outgoing::Payload`]s for this socket here
    /// with [`SocketRef::slot`].
    pub fn queue(&self) -> &Arc<Queue<Outgoing>> {
        &self.queue
    }

    /// This socket's namespace slot in its session's queue.
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// The namespace, e.g. `/` or `/ws/celery/tasks`.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The socket's id (Socket.IO's `socket.id` on the client).
    pub fn id(&self) -> &str {
        &self.sid
    }

    /// Emits `event` with `data` (made by the connection, not shared: replies, pongs).
    pub fn emit(&self, event: &str, data: &Value) -> Result<(), Full> {
        let body = serde_json::json!([event, data]).to_string();
        self.queue
            .push_control(Outgoing::Text(sio::encode(
                sio::Kind::Event,
                &self.ns,
                None,
                &body,
            )))
            .map(drop)
    }

    /// Ends the socket from the server's side once what was queued for it is sent:
    /// the client gets a DISCONNECT, the application its `disconnect`.
    pub fn disconnect(&self) -> Result<(), Full> {
        self.queue
            .push_control(Outgoing::End {
                ns: self.slot,
                code: crate::wire::ws::CLOSE_NORMAL,
                reason: "server namespace disconnect".into(),
            })
            .map(drop)
    }
}

/// Answers one event that asked for an acknowledgement.
#[derive(Debug)]
pub struct AckSender {
    socket: SocketRef,
    id: u64,
}

impl AckSender {
    /// Sends the acknowledgement with `data` as its one argument.
    pub fn send(self, data: &Value) -> Result<(), Full> {
        let body = serde_json::json!([data]).to_string();
        let packet = sio::encode(sio::Kind::Ack, &self.socket.ns, Some(self.id), &body);
        self.socket
            .queue
            .push_control(Outgoing::Text(packet))
            .map(drop)
    }
}
