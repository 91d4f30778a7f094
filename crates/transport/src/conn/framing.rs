//! A transport is a framing: how one queued message becomes slices of the write
//! ([`Gather`]). SSE sends the payload's shared SSE message; the native WebSocket puts
//! a frame header before the shared bytes; Socket.IO puts the frame header and
//! `42["<event>",` before them and `]` after (a binary payload is a placeholder packet
//! and one binary attachment frame).

use std::sync::Arc;

use bytes::Bytes;

use super::writer::Gather;
use super::Outgoing;
use crate::eio::sio;
use crate::wire;
use crate::wire::ws::{self, BINARY, MAX_HEADER, TEXT};

/// Turns queued messages into bytes on the wire.
pub trait Framing {
    /// Appends `msg`'s slices to `g`.
    fn frame(&self, msg: &Outgoing, g: &mut Gather);
}

/// Server-Sent Events: [`Outgoing::Text`] is a whole SSE message already.
#[derive(Debug, Default)]
pub struct Sse;

impl Framing for Sse {
    fn frame(&self, msg: &Outgoing, g: &mut Gather) {
        match msg {
            Outgoing::Payload { payload, .. } => g.shared(payload.sse()),
            Outgoing::Text(b) | Outgoing::Raw(b) => g.shared(b),
            Outgoing::Heartbeat => g.constant(wire::sse::KEEP_ALIVE),
            // The stream ends with the connection; a reason is told first.
            Outgoing::End { reason, .. } if !reason.is_empty() => {
                let mut out = Vec::new();
                let data = serde_json::json!({ "reason": &**reason }).to_string();
                wire::sse::message(&mut out, DISCONNECT_EVENT, None, data.as_bytes());
                g.shared(&out.into());
            }
            // SSE is text only.
            Outgoing::Binary(_) | Outgoing::End { .. } => {}
        }
    }
}

/// The native WebSocket: one message per payload.
#[derive(Debug, Default)]
pub struct WebSocket;

impl Framing for WebSocket {
    fn frame(&self, msg: &Outgoing, g: &mut Gather) {
        match msg {
            Outgoing::Payload { payload, .. } => {
                let opcode = if payload.binary { BINARY } else { TEXT };
                ws_message(g, opcode, &[], &payload.bytes, b"");
            }
            Outgoing::Text(b) => ws_message(g, TEXT, &[], b, b""),
            Outgoing::Binary(b) => ws_message(g, BINARY, &[], b, b""),
            Outgoing::Raw(b) => g.shared(b),
            Outgoing::Heartbeat => g.constant(PING_FRAME),
            Outgoing::End { code, reason, .. } => g.head(&ws::close_frame(*code, reason)),
        }
    }
}

/// SSE event telling the client why the server ends its stream.
pub const DISCONNECT_EVENT: &str = "disconnect";

/// An empty WebSocket ping.
const PING_FRAME: &[u8] = &[0x80 | ws::PING, 0];

/// Socket.IO over WebSocket: a payload is an EVENT packet of the namespace in its
/// slot; [`Outgoing::Text`] is a whole Engine.IO packet (`2`, `40{…}`, `43[…]`).
#[derive(Debug)]
pub struct SocketIo {
    /// Each namespace slot's prefix in packets: empty for `/`, else `/name,`.
    pub namespaces: Arc<[Arc<str>]>,
}

impl Framing for SocketIo {
    fn frame(&self, msg: &Outgoing, g: &mut Gather) {
        match msg {
            Outgoing::Payload { ns, payload } => {
                let prefix = self.namespaces.get(usize::from(*ns)).map_or("", |p| p);
                if payload.binary {
                    let head = sio::binary_event_head(prefix, &payload.kind);
                    ws_message(g, TEXT, head.as_bytes(), &Bytes::new(), b"");
                    ws_message(g, BINARY, &[], &payload.bytes, b"");
                } else if payload.is_json() && prefix.is_empty() {
                    // The frame header and `42["<event>",` are the same for every socket
                    // of the default namespace: made once per payload.
                    g.shared(payload.sio_ws_head());
                    g.shared(&payload.bytes);
                    g.constant(b"]");
                } else if payload.is_json() {
                    let head = sio::event_head(prefix, &payload.kind);
                    ws_message(g, TEXT, head.as_bytes(), &payload.bytes, b"]");
                }
            }
            Outgoing::Text(b) => ws_message(g, TEXT, &[], b, b""),
            Outgoing::Binary(b) => ws_message(g, BINARY, &[], b, b""),
            Outgoing::Raw(b) => g.shared(b),
            // The session's driver frees the slot; the client gets the DISCONNECT.
            Outgoing::End { ns, .. } => {
                let prefix = self.namespaces.get(usize::from(*ns)).map_or("", |p| p);
                ws_message(
                    g,
                    TEXT,
                    b"41",
                    &Bytes::copy_from_slice(prefix.as_bytes()),
                    b"",
                );
            }
            Outgoing::Heartbeat => {} // Engine.IO pings on its own
        }
    }
}

/// One WebSocket message of `head` + `body` + `tail` (only `body` is shared).
fn ws_message(g: &mut Gather, opcode: u8, head: &[u8], body: &Bytes, tail: &'static [u8]) {
    let mut frame = [0; MAX_HEADER];
    let n = ws::header(opcode, head.len() + body.len() + tail.len(), &mut frame);
    g.head2(&frame[..n], head);
    g.shared(body);
    if !tail.is_empty() {
        g.constant(tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::payload::Payload;
    use crate::conn::writer::with_gather;

    fn payload(kind: &str, bytes: &'static [u8], binary: bool) -> Outgoing {
        Outgoing::Payload {
            ns: 1,
            payload: Arc::new(Payload::new(
                kind.into(),
                3,
                Bytes::from_static(bytes),
                binary,
            )),
        }
    }

    fn framed(f: &dyn Framing, msg: &Outgoing) -> Vec<u8> {
        with_gather(|g| {
            f.frame(msg, g);
            g.concat()
        })
    }

    #[test]
    fn each_transport_frames_the_same_shared_payload() {
        let msg = payload("task_update", b"{\"id\":\"a\"}", false);
        assert_eq!(
            framed(&Sse, &msg),
            b"id: 3\nevent: task_update\ndata: {\"id\":\"a\"}\n\n"
        );
        assert_eq!(framed(&WebSocket, &msg), b"\x81\x0a{\"id\":\"a\"}");
        let sio = SocketIo {
            namespaces: vec!["".into(), "/ws/celery/tasks,".into()].into(),
        };
        let packet = b"42/ws/celery/tasks,[\"task_update\",{\"id\":\"a\"}]";
        let mut want = vec![0x81, packet.len() as u8];
        want.extend_from_slice(packet);
        assert_eq!(framed(&sio, &msg), want);
        // The default namespace's header is made once per payload; same bytes.
        let Outgoing::Payload { payload, .. } = &msg else {
            unreachable!()
        };
        let default = Outgoing::Payload {
            ns: 0,
            payload: payload.clone(),
        };
        let packet = b"42[\"task_update\",{\"id\":\"a\"}]";
        let mut want = vec![0x81, packet.len() as u8];
        want.extend_from_slice(packet);
        assert_eq!(framed(&sio, &default), want);
        assert_eq!(
            framed(&sio, &default),
            want,
            "the second time from the cache"
        );
    }

    #[test]
    fn a_binary_payload_is_a_placeholder_then_an_attachment() {
        let sio = SocketIo {
            namespaces: vec!["".into(), "".into()].into(),
        };
        let out = framed(&sio, &payload("batch_update", b"\x93\x01\x02\x03", true));
        let text = b"451-[\"batch_update\",{\"_placeholder\":true,\"num\":0}]";
        let mut want = vec![0x81, text.len() as u8];
        want.extend_from_slice(text);
        want.extend_from_slice(b"\x82\x04\x93\x01\x02\x03");
        assert_eq!(out, want);
        // On the native WebSocket it is just a binary message.
        assert_eq!(
            framed(&WebSocket, &payload("batch_update", b"\x93\x01", true)),
            b"\x82\x02\x93\x01"
        );
    }

    #[test]
    fn heartbeats_and_ends_in_each_framing() {
        let end = Outgoing::End {
            ns: 1,
            code: 4000,
            reason: "slow".into(),
        };
        assert_eq!(framed(&Sse, &Outgoing::Heartbeat), b": keep-alive\n\n");
        assert_eq!(
            framed(&Sse, &end),
            b"event: disconnect\ndata: {\"reason\":\"slow\"}\n\n"
        );
        let silent = Outgoing::End {
            ns: 0,
            code: 4001,
            reason: "".into(),
        };
        assert!(framed(&Sse, &silent).is_empty());
        assert_eq!(framed(&WebSocket, &Outgoing::Heartbeat), b"\x89\x00");
        assert_eq!(framed(&WebSocket, &end), b"\x88\x06\x0f\xa0slow");
        let sio = SocketIo {
            namespaces: vec!["".into(), "/a,".into()].into(),
        };
        assert_eq!(framed(&sio, &end), b"\x81\x0541/a,");
        assert!(framed(&sio, &Outgoing::Heartbeat).is_empty());
    }

    #[test]
    fn a_text_payload_that_is_not_json_is_not_sent_on_socket_io() {
        let sio = SocketIo {
            namespaces: Arc::new([]),
        };
        assert!(framed(&sio, &payload("x", b"{\"a\":", false)).is_empty());
    }
}
