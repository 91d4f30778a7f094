//! One Engine.IO session: its transport, its Socket.IO sockets (one per namespace the
//! client joined, each in a slot of the session's queue), and what each packet the
//! client sends does. Both transports feed it the same way ([`Session::receive`]).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
// tokio's clock, so tests can pause time.
use tokio::time::Instant;

use bytes::Bytes;

use super::packet::Packet;
use super::sio::{self, Assembly, Kind};
use super::{Handler, Server, SocketRef};
use crate::conn::queue::Queue;
use crate::conn::Outgoing;

mod sockets;

/// Most namespaces one session may join at once.
pub const MAX_NAMESPACES: usize = 16;

/// Which transport serves the session now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// Long-polling, while the client probes a WebSocket (polling requests get `noop`).
    Upgrading,
    /// WebSocket.
    WebSocket,
    /// Ended.
    Closed,
}

enum Slot<S> {
    Free,
    /// The application is deciding.
    Joining(Arc<str>),
    Joined(SocketRef, Arc<S>),
}

struct State<S> {
    transport: Transport,
    slots: Vec<Slot<S>>,
    /// Each slot's namespace prefix in packets (`""` for `/`), as the framing needs it.
    prefixes: Arc<[Arc<str>]>,
    /// A binary packet waiting for its attachments.
    assembly: Option<Assembly>,
    /// When the client last proved it is alive.
    seen: Instant,
}

/// One client's session.
pub struct Session<H: Handler> {
    /// Its id, the `sid` of the open packet.
    pub sid: Box<str>,
    /// Everything the client is sent.
    pub queue: Arc<Queue<Outgoing>>,
    /// A long-polling request is waiting (a client may have one at a time).
    pub polling: AtomicBool,
    state: Mutex<State<H::Socket>>,
}

impl<H: Handler> Session<H> {
    /// A session on `transport` whose queue holds `capacity` messages.
    pub fn new(sid: Box<str>, transport: Transport, capacity: usize) -> Self {
        Self {
            sid,
            queue: Arc::new(Queue::new(capacity)),
            polling: AtomicBool::new(false),
            state: Mutex::new(State {
                transport,
                slots: Vec::new(),
                prefixes: Arc::new([]),
                assembly: None,
                seen: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<H::Socket>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The transport now.
    pub fn transport(&self) -> Transport {
        self.lock().transport
    }

    /// Moves to `to`; `false` (and nothing changes) if the session is closed or not
    /// on `from`.
    pub fn switch(&self, from: Transport, to: Transport) -> bool {
        let mut s = self.lock();
        if s.transport != from {
            return false;
        }
        s.transport = to;
        true
    }

    /// Each slot's namespace prefix, for framing.
    pub fn prefixes(&self) -> Arc<[Arc<str>]> {
        self.lock().prefixes.clone()
    }

    /// When the client last sent anything.
    pub fn seen(&self) -> Instant {
        self.lock().seen
    }

    /// Handles one packet from the client; `Err` with a reason when the session must
    /// end. Upgrade probes are the WebSocket transport's to answer.
    pub fn receive(
        self: &Arc<Self>,
        server: &Arc<Server<H>>,
        packet: Packet,
    ) -> Result<(), String> {
        self.lock().seen = Instant::now();
        match packet {
            Packet::Close => Err("client closed the session".into()),
            Packet::Pong | Packet::Noop | Packet::PingProbe | Packet::Upgrade => Ok(()),
            Packet::Message(text) => {
                let p = sio::decode(&text).map_err(|e| format!("parse error: {}", e.0))?;
                if matches!(p.kind, Kind::BinaryEvent | Kind::BinaryAck) {
                    self.lock().assembly = Some(Assembly::new(p));
                    return Ok(());
                }
                self.socketio(server, p, Vec::new())
            }
            Packet::Binary(bytes) => {
                let Some(assembly) = self.lock().assembly.take() else {
                    return Err("parse error: an attachment without a binary packet".into());
                };
                match assembly.attach(bytes) {
                    Ok((p, attachments)) => self.socketio(server, p, attachments),
                    Err(waiting) => {
                        self.lock().assembly = Some(waiting);
                        Ok(())
                    }
                }
            }
        }
    }

    fn socketio(
        self: &Arc<Self>,
        server: &Arc<Server<H>>,
        p: sio::Packet,
        attachments: Vec<Bytes>,
    ) -> Result<(), String> {
        match p.kind {
            Kind::Connect => {
                self.join(server, p.ns, p.data);
                Ok(())
            }
            Kind::Disconnect => {
                self.leave(server, &p.ns, "client namespace disconnect");
                Ok(())
            }
            Kind::Event | Kind::BinaryEvent => {
                self.event(server, p, attachments);
                Ok(())
            }
            // The server never asks for acknowledgements.
            Kind::Ack | Kind::BinaryAck => Ok(()),
            Kind::ConnectError => Err("parse error: CONNECT_ERROR from a client".into()),
        }
    }

    /// The packets that tell the client the server ended its sockets: a DISCONNECT per
    /// joined namespace.
    pub fn farewell(&self) -> Vec<Bytes> {
        self.lock()
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Joined(sock, _) => Some(sio::encode(Kind::Disconnect, &sock.ns, None, "")),
                _ => None,
            })
            .collect()
    }

    /// Ends the session: every socket is told to the application, the queue closes
    /// (its transport sends what was queued, then stops). Idempotent.
    pub fn close(&self, server: &Server<H>, reason: &str) {
        let slots = {
            let mut s = self.lock();
            if s.transport == Transport::Closed {
                return;
            }
            s.transport = Transport::Closed;
            std::mem::take(&mut s.slots)
        };
        for slot in slots {
            if let Slot::Joined(socket, state) = slot {
                server.handler.disconnect(&socket, &state, reason);
            }
        }
        self.queue.close(reason);
        server.forget(&self.sid);
    }
}
