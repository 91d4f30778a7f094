//! A session's Socket.IO sockets: joining a namespace (the application decides on its
//! own task; the client gets CONNECT or CONNECT_ERROR), events, and leaving.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{Session, Slot, Transport, MAX_NAMESPACES};
use crate::conn::Outgoing;
use crate::eio::sio::{self, Kind};
use crate::eio::{AckSender, Event, Handler, Refusal, Server, SocketRef};

impl<H: Handler> Session<H> {
    /// A CONNECT: reserves a slot, and lets the application decide on its own task.
    pub(super) fn join(self: &Arc<Self>, server: &Arc<Server<H>>, ns: String, auth: Option<Value>) {
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
            // Framed for its namespace already: what the application queues while it
            // decides reaches the client before the CONNECT, which buffers it.
            s.prefixes = prefixes(&s.slots);
            slot
        };
        let socket = SocketRef {
            queue: self.queue.clone(),
            ns: ns.clone(),
            slot: slot as u8,
            sid: crate::eio::server::new_id().into(),
        };
        let (session, server) = (self.clone(), server.clone());
        tokio::spawn(async move {
            let decided = server.handler.connect(&socket, auth).await;
            if let Some(state) = session.joined(&server, &socket, decided) {
                server.handler.connected(&socket, &state).await;
            }
        });
    }

    /// The application decided on a join; the socket's state if it joined.
    fn joined(
        &self,
        server: &Server<H>,
        socket: &SocketRef,
        decided: Result<H::Socket, Refusal>,
    ) -> Option<Arc<H::Socket>> {
        let slot = usize::from(socket.slot);
        let mut s = self.lock();
        let closed = s.transport == Transport::Closed;
        match decided {
            Ok(state) if !closed => {
                let state = Arc::new(state);
                let accepted = json!({ "sid": socket.id() }).to_string();
                let packet = sio::encode(Kind::Connect, &socket.ns, None, &accepted);
                s.slots[slot] = Slot::Joined(socket.clone(), state.clone());
                drop(s);
                let _ = self.queue.push_control(Outgoing::Text(packet));
                Some(state)
            }
            Ok(state) => {
                drop(s);
                server
                    .handler
                    .disconnect(socket, &state, "the session closed while joining");
                None
            }
            Err(refusal) => {
                s.slots[slot] = Slot::Free;
                drop(s);
                self.refuse(&socket.ns, &refusal);
                None
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

    pub(super) fn event(&self, server: &Arc<Server<H>>, p: sio::Packet, attachments: Vec<Bytes>) {
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
    pub(super) fn leave(&self, server: &Server<H>, ns: &str, reason: &str) {
        let slot = self
            .lock()
            .slots
            .iter()
            .position(|slot| matches!(slot, Slot::Joined(sock, _) if &*sock.ns == ns));
        if let Some(slot) = slot {
            self.leave_slot(server, slot as u8, reason);
        }
    }

    /// Frees `slot` (the server ended its socket: the DISCONNECT is on its way) and
    /// tells the application.
    pub fn leave_slot(&self, server: &Server<H>, slot: u8, reason: &str) {
        let left = {
            let mut s = self.lock();
            match s.slots.get_mut(usize::from(slot)) {
                Some(joined @ Slot::Joined(..)) => std::mem::replace(joined, Slot::Free),
                _ => return,
            }
        };
        if let Slot::Joined(socket, state) = left {
            server.handler.disconnect(&socket, &state, reason);
        }
    }
}

/// Each slot's namespace prefix in packets: joined and joining slots their own, free
/// ones the default namespace's (`""`).
fn prefixes<S>(slots: &[Slot<S>]) -> Arc<[Arc<str>]> {
    slots
        .iter()
        .map(|slot| match slot {
            Slot::Joined(SocketRef { ns, .. }, _) | Slot::Joining(ns) => sio::ns_prefix(ns).into(),
            Slot::Free => Arc::from(""),
        })
        .collect()
}
