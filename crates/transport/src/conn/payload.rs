//! The shared payload: one event's bytes in one encoding, made once by the dispatch
//! component (or the host, for its own messages) and sent to every connection that
//! gets it. Connections queue an `Arc` of it; each transport only frames it.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::wire;
use crate::wire::ws;

/// One message, as every connection that gets it shares it.
#[derive(Debug)]
pub struct Payload {
    /// Event name (`task_update`, `batch_update`, `degraded`, …).
    pub kind: Arc<str>,
    /// Sequence number of the (last) event inside; 0 for host-made messages, which
    /// resume never replays.
    pub seq: u64,
    /// The encoded bytes: JSON text, or MessagePack (possibly gzipped) when `binary`.
    pub bytes: Bytes,
    /// The bytes are binary, not UTF-8 JSON.
    pub binary: bool,
    /// The whole SSE message, made on first use.
    sse: OnceLock<Bytes>,
    /// Whether the bytes are valid JSON, checked on first use by the transports that
    /// embed them in a packet of their own (Socket.IO).
    json: OnceLock<bool>,
    /// The WebSocket frame header and `42["<kind>",` of its Socket.IO event packet in
    /// the default namespace, made on first use.
    sio_ws_head: OnceLock<Bytes>,
    /// The bytes as a JSON value, for libraries that embed one (made on first use).
    raw: OnceLock<Option<Box<serde_json::value::RawValue>>>,
}

impl Payload {
    /// A payload of `bytes`.
    pub fn new(kind: Arc<str>, seq: u64, bytes: Bytes, binary: bool) -> Self {
        Self {
            kind,
            seq,
            bytes,
            binary,
            sse: OnceLock::new(),
            json: OnceLock::new(),
            sio_ws_head: OnceLock::new(),
            raw: OnceLock::new(),
        }
    }

    /// A host-made JSON message (markers, replies): no sequence number.
    pub fn control(kind: &str, body: &serde_json::Value) -> Self {
        Self::new(kind.into(), 0, body.to_string().into(), false)
    }

    /// The SSE message carrying it: `id` (unless host-made), `event`, `data`. Made once
    /// and shared by every SSE connection.
    pub fn sse(&self) -> &Bytes {
        self.sse.get_or_init(|| {
            let mut out = Vec::new();
            let id = (self.seq != 0).then_some(self.seq);
            wire::sse::message(&mut out, &self.kind, id, &self.bytes);
            out.into()
        })
    }

    /// What goes before the bytes in a WebSocket frame carrying them as a Socket.IO
    /// event of the default namespace (`]` goes after). Made once, shared by every socket.
    pub fn sio_ws_head(&self) -> &Bytes {
        self.sio_ws_head.get_or_init(|| {
            let packet_head = crate::eio::sio::event_head("", &self.kind);
            let len = packet_head.len() + self.bytes.len() + 1;
            let mut frame = [0; ws::MAX_HEADER];
            let n = ws::header(ws::TEXT, len, &mut frame);
            let mut out = Vec::with_capacity(n + packet_head.len());
            out.extend_from_slice(&frame[..n]);
            out.extend_from_slice(packet_head.as_bytes());
            out.into()
        })
    }

    /// The bytes as a JSON value, checked once; `None` when binary or not JSON.
    pub fn raw_json(&self) -> Option<&serde_json::value::RawValue> {
        self.raw
            .get_or_init(|| {
                let text = std::str::from_utf8(&self.bytes)
                    .ok()
                    .filter(|_| self.is_json())?;
                serde_json::value::RawValue::from_string(text.to_owned()).ok()
            })
            .as_deref()
    }

    /// Whether the bytes are JSON a packet may embed as they are (checked once; a
    /// payload that is not is logged and must not be sent).
    pub fn is_json(&self) -> bool {
        *self.json.get_or_init(|| {
            let ok = !self.binary
                && serde_json::from_slice::<serde::de::IgnoredAny>(&self.bytes).is_ok();
            if !ok && !self.binary {
                tracing::error!(kind = %self.kind, "a text payload is not JSON; not sent");
            }
            ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sse_message_is_made_once_with_the_event_id() {
        let p = Payload::new(
            "task_update".into(),
            7,
            Bytes::from_static(b"{\"a\":1}"),
            false,
        );
        assert_eq!(
            &p.sse()[..],
            b"id: 7\nevent: task_update\ndata: {\"a\":1}\n\n"
        );
        assert!(std::ptr::eq(p.sse(), p.sse()));
        let marker = Payload::control("degraded", &serde_json::json!({ "type": "degraded" }));
        assert_eq!(
            &marker.sse()[..],
            b"event: degraded\ndata: {\"type\":\"degraded\"}\n\n"
        );
    }

    #[test]
    fn only_json_text_may_be_embedded() {
        let json = Payload::new("x".into(), 1, Bytes::from_static(b"[1,{\"a\":2}]"), false);
        let broken = Payload::new("x".into(), 1, Bytes::from_static(b"{\"a\":"), false);
        let binary = Payload::new("x".into(), 1, Bytes::from_static(b"\x81\xa1a\x01"), true);
        assert!(json.is_json());
        assert!(!broken.is_json());
        assert!(!binary.is_json());
    }
}
