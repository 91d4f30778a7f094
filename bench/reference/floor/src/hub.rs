//! The rooms: every subscribed connection's queue, by room, and publishing to them.
//!
//! Each event is encoded once per transport that has a member in the room (a Socket.IO
//! packet, a WebSocket message or an SSE message, each already framed for the wire),
//! and the same bytes are queued for every member of that transport.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::frame::{self, TEXT};

/// Frames queued per connection before publishing drops frames for it.
pub const QUEUE: usize = 4096;

/// How a member's frames are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `42["event",data]` in a WebSocket text frame.
    Socketio,
    /// `data` as a WebSocket text message.
    Ws,
    /// `event: <event>\ndata: <data>\n\n` (the body is not chunked: it ends with the
    /// connection).
    Sse,
}

/// Every room's members, and the secret tokens are checked with.
pub struct Hub {
    /// The HS256 secret.
    pub secret: Vec<u8>,
    rooms: Mutex<HashMap<String, Vec<Member>>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

struct Member {
    id: u64,
    kind: Kind,
    tx: mpsc::Sender<Bytes>,
}

impl Hub {
    /// A hub verifying tokens with `secret`.
    pub fn new(secret: Vec<u8>) -> Self {
        Self {
            secret,
            rooms: Mutex::default(),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `event` with `data` for every member of `room`, encoded once per kind.
    pub fn publish(&self, room: &str, event: &str, data: &Value) {
        let rooms = self.rooms();
        let Some(members) = rooms.get(room) else {
            return;
        };
        let mut frames: [Option<Bytes>; 3] = Default::default();
        for member in members {
            let frame = frames[member.kind as usize]
                .get_or_insert_with(|| encode(member.kind, event, data))
                .clone();
            if let Err(TrySendError::Full(_)) = member.tx.try_send(frame) {
                // A client this far behind loses the frame; say so once.
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("floor: a client's queue is full ({QUEUE} frames); dropping frames");
                }
            }
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Vec<Member>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a member to `room`.
    pub fn join(&self, room: &str, id: u64, kind: Kind, tx: mpsc::Sender<Bytes>) {
        let mut rooms = self.rooms();
        rooms
            .entry(room.to_owned())
            .or_default()
            .push(Member { id, kind, tx });
    }

    /// Removes member `id` from `room`.
    pub fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms();
        if let Some(members) = rooms.get_mut(room) {
            if let Some(i) = members.iter().position(|m| m.id == id) {
                members.swap_remove(i);
            }
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh session id.
    pub fn sid(&self) -> String {
        let n = self.next_id();
        let mut raw = [0; 16];
        for (i, half) in raw.chunks_mut(8).enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(n);
            h.write_usize(i);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        B64.encode(raw)
    }
}

/// `event` with `data`, ready for the wire of `kind`.
fn encode(kind: Kind, event: &str, data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(512);
    match kind {
        Kind::Socketio => {
            out.extend_from_slice(b"42[");
            let _ = serde_json::to_writer(&mut out, event);
            out.push(b',');
            let _ = serde_json::to_writer(&mut out, data);
            out.push(b']');
            frame::encode(TEXT, &out)
        }
        Kind::Ws => {
            let _ = serde_json::to_writer(&mut out, data);
            frame::encode(TEXT, &out)
        }
        Kind::Sse => {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(event.as_bytes());
            out.extend_from_slice(b"\ndata: ");
            // Compact JSON has no raw newline, so the data is one line.
            let _ = serde_json::to_writer(&mut out, data);
            out.extend_from_slice(b"\n\n");
            Bytes::from(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_gets_its_own_framing_of_the_same_event() {
        let data = json!({ "id": "lg1" });
        assert_eq!(
            &encode(Kind::Socketio, "task_update", &data)[..],
            b"\x81\x1e42[\"task_update\",{\"id\":\"lg1\"}]"
        );
        assert_eq!(
            &encode(Kind::Ws, "task_update", &data)[..],
            b"\x81\x0c{\"id\":\"lg1\"}"
        );
        assert_eq!(
            &encode(Kind::Sse, "task_update", &data)[..],
            b"event: task_update\ndata: {\"id\":\"lg1\"}\n\n"
        );
    }

    #[tokio::test]
    async fn publishing_reaches_the_members_of_the_room_only() {
        let hub = Hub::new(Vec::new());
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let (other, mut other_rx) = mpsc::channel(QUEUE);
        hub.join("r", 1, Kind::Ws, tx);
        hub.join("s", 2, Kind::Ws, other);
        hub.publish("r", "e", &json!(1));
        assert_eq!(&rx.recv().await.unwrap()[..], b"\x81\x011");
        assert!(other_rx.try_recv().is_err());
        hub.leave("r", 1);
        hub.publish("r", "e", &json!(2));
        assert!(rx.try_recv().is_err());
    }
}
