//! One Engine.IO session: its transport, its Socket.IO sockets (one per namespace the
//! client joined, each in a slot of the session's queue), and what each packet the
//! client sends does. Both transports feed it the same way ([`Session::receive`]).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Value};

use super::packet::Packet;
use super::sio::{self, Assembly, Kind};
use super::{AckSender, Event, Handler, Refusal, Server, SocketRef};
use crate::conn::queue::Queue;
use crate::conn::Outgoing;

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

    /// A CONNECT: reserves a slot, and lets the application decide on its own task.
    fn join(self: &Arc<Self>, server: &Arc<Server<H>>, ns: String, auth: Option<Value>) {
        let ns: Arc<str> = ns.into();
        let slot = {
            let mut s = self.lock();
            let taken = s.slots.iter().any(|slot| match slot {
                Slot::Joining(n) | Slot::Joined(SocketRef { ns: n, .. }, _) => *n == ns,
                Slot::Free => false,
            });
            if taken {
                return; // a second CONNECT to the same namespace changes nothing
            }
            let free = s.slots.iter().position(|slot| matches!(slot, Slot::Free));
            let slot = free.unwrap_or(s.slots.len());
            if slot >= MAX_NAMESPACES {
                drop(s);
                self.refuse(
                    &ns,
                    &Refusal {
                        message: format!("at most {MAX_NAMESPACES} namespaces per connection"),
                        data: None,
                    },
                );
                return;
            }
            if slot == s.slots.len() {
                s.slots.push(Slot::Free);
            }
            s.slots[slot] = Slot::Joining(ns.clone());
            slot
        };
        let socket = SocketRef {
            queue: self.queue.clone(),
            ns: ns.clone(),
            slot: slot as u8,
            sid: super::server::new_id().into(),
        };
        let (session, server) = (self.clone(), server.clone());
        tokio::spawn(async move {
            let decided = server.handler.connect(&socket, auth).await;
            session.joined(&server, socket, decided);
        });
    }

    /// The application decided on a join.
    fn joined(&self, server: &Server<H>, socket: SocketRef, decided: Result<H::Socket, Refusal>) {
        let slot = usize::from(socket.slot);
        let mut s = self.lock();
        let closed = s.transport == Transport::Closed;
        match decided {
            Ok(state) if !closed => {
                let state = Arc::new(state);
                let accepted = json!({ "sid": socket.id() }).to_string();
                let packet = sio::encode(Kind::Connect, &socket.ns, None, &accepted);
                s.slots[slot] = Slot::Joined(socket.clone(), state);
                s.prefixes = s
                    .slots
                    .iter()
                    .map(|slot| match slot {
                        Slot::Joined(sock, _) => sio::ns_prefix(&sock.ns).into(),
                        _ => Arc::from(""),
                    })
                    .collect();
                drop(s);
                let _ = self.queue.push_control(Outgoing::Text(packet));
            }
            Ok(state) => {
                drop(s);
                server
                    .handler
                    .disconnect(&socket, &state, "the session closed while joining");
            }
            Err(refusal) => {
                s.slots[slot] = Slot::Free;
                drop(s);
                self.refuse(&socket.ns, &refusal);
            }
        }
    }

    fn refuse(&self, ns: &str, refusal: &Refusal) {
        let mut body = json!({ "message": refusal.message });
        if let Some(data) = &refusal.data {
            body["data"] = data.clone();
        }
        let packet = sio::encode(Kind::ConnectError, ns, None, &body.to_string());
        let _ = self.queue.push_control(Outgoing::Text(packet));
    }

    /// The socket of `ns`, if joined.
    fn socket(&self, ns: &str) -> Option<(SocketRef, Arc<H::Socket>)> {
        self.lock().slots.iter().find_map(|slot| match slot {
            Slot::Joined(sock, state) if &*sock.ns == ns => Some((sock.clone(), state.clone())),
            _ => None,
        })
    }

    fn event(&self, server: &Arc<Server<H>>, p: sio::Packet, attachments: Vec<Bytes>) {
        let Some((socket, state)) = self.socket(&p.ns) else {
            return; // not joined: Socket.IO ignores it
        };
        let Some(Value::Array(mut args)) = p.data else {
            return; // sio::decode checked the shape
        };
        let name = match args.remove(0) {
            Value::String(name) => name,
            _ => return,
        };
        let ack = p.id.map(|id| AckSender {
            socket: socket.clone(),
            id,
        });
        let event = Event {
            name,
            args,
            attachments,
            ack,
        };
        let server = server.clone();
        tokio::spawn(async move { server.handler.event(socket, state, event).await });
    }

    /// Frees the slot of `ns` and tells the application.
    fn leave(&self, server: &Server<H>, ns: &str, reason: &str) {
        let left = {
            let mut s = self.lock();
            let i = s
                .slots
                .iter()
                .position(|slot| matches!(slot, Slot::Joined(sock, _) if &*sock.ns == ns));
            i.map(|i| std::mem::replace(&mut s.slots[i], Slot::Free))
        };
        if let Some(Slot::Joined(socket, state)) = left {
            server.handler.disconnect(&socket, &state, reason);
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
