//! Socket.IO v5 packets, carried as Engine.IO messages:
//! `<type>[<attachments>-][/<namespace>,][<ack id>][<JSON>]`.
//!
//! Clients' packets are decoded whole (they are few and small); the server's event
//! packets are never built here but framed around the shared payload
//! ([`crate::conn::framing`]). A binary event names its attachments with
//! `{"_placeholder":true,"num":n}`; they follow as binary messages ([`Assembly`]).

use bytes::Bytes;
use serde_json::Value;

/// Packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0`: join a namespace (the client's auth as data) / accepted (`{"sid"}`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event: `["name", args…]`.
    Event,
    /// `3`: the answer to an event that asked for one: `[args…]`.
    Ack,
    /// `4`: the server refuses the join: `{"message", "data"?}`.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Its type.
    pub kind: Kind,
    /// Its namespace, `/` when none was written.
    pub ns: String,
    /// The acknowledgement id, when the sender wants an answer.
    pub id: Option<u64>,
    /// Its JSON, if any.
    pub data: Option<Value>,
    /// How many binary attachments follow.
    pub attachments: usize,
}

/// Most attachments one packet may announce; Vigil's clients send none.
pub const MAX_ATTACHMENTS: usize = 10;

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPacket(pub &'static str);

/// Decodes one packet (an Engine.IO message's text, without its `4`).
pub fn decode(text: &[u8]) -> Result<Packet, BadPacket> {
    let text = std::str::from_utf8(text).map_err(|_| BadPacket("not UTF-8"))?;
    let mut rest = text;
    let kind = match rest.as_bytes().first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        _ => return Err(BadPacket("unknown packet type")),
    };
    rest = &rest[1..];
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let (n, after) = rest
            .split_once('-')
            .ok_or(BadPacket("binary packet without attachment count"))?;
        attachments = n.parse().map_err(|_| BadPacket("bad attachment count"))?;
        if attachments > MAX_ATTACHMENTS {
            return Err(BadPacket("too many attachments"));
        }
        rest = after;
    }
    let mut ns = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        ns = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = match digits {
        0 => None,
        _ => Some(
            rest[..digits]
                .parse()
                .map_err(|_| BadPacket("bad ack id"))?,
        ),
    };
    rest = &rest[digits..];
    let data = match rest {
        "" => None,
        json => Some(serde_json::from_str(json).map_err(|_| BadPacket("malformed JSON"))?),
    };
    check(kind, &data)?;
    Ok(Packet {
        kind,
        ns: ns.to_owned(),
        id,
        data,
        attachments,
    })
}

/// The shape each type's data must have.
fn check(kind: Kind, data: &Option<Value>) -> Result<(), BadPacket> {
    let ok = match (kind, data) {
        (Kind::Connect, None | Some(Value::Object(_))) => true,
        (Kind::Disconnect, None) => true,
        (Kind::Event | Kind::BinaryEvent, Some(Value::Array(a))) => {
            a.first().is_some_and(Value::is_string)
        }
        (Kind::Ack | Kind::BinaryAck, Some(Value::Array(_))) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(BadPacket("data of the wrong shape for the packet type"))
    }
}

/// `ns`'s prefix in a packet: nothing for `/`, else `/name,`.
pub fn ns_prefix(ns: &str) -> String {
    if ns == "/" {
        String::new()
    } else {
        format!("{ns},")
    }
}

/// The start of an Engine.IO message carrying an EVENT `name` in the namespace of
/// `prefix` ([`ns_prefix`]): `42<prefix>["<name>",`; the payload's JSON and `]` follow.
pub fn event_head(prefix: &str, name: &str) -> String {
    format!("42{prefix}[{},", json_string(name))
}

/// An Engine.IO message carrying a BINARY_EVENT `name` whose one argument is the
/// attachment that follows: `451-<prefix>["<name>",{"_placeholder":true,"num":0}]`.
pub fn binary_event_head(prefix: &str, name: &str) -> String {
    format!(
        "451-{prefix}[{},{{\"_placeholder\":true,\"num\":0}}]",
        json_string(name)
    )
}

/// `s` as a JSON string (event names are plain words, but quoting is cheap and safe).
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// An Engine.IO message carrying a Socket.IO packet of `kind` in `ns` with `data`
/// (already JSON) and ack `id`: `4<type><ns,><id><data>`.
pub fn encode(kind: Kind, ns: &str, id: Option<u64>, data: &str) -> Bytes {
    let digit = match kind {
        Kind::Connect => '0',
        Kind::Disconnect => '1',
        Kind::Event => '2',
        Kind::Ack => '3',
        Kind::ConnectError => '4',
        Kind::BinaryEvent => '5',
        Kind::BinaryAck => '6',
    };
    let id = id.map(|i| i.to_string()).unwrap_or_default();
    format!("4{digit}{}{id}{data}", ns_prefix(ns)).into()
}

/// A binary packet waiting for its attachments.
#[derive(Debug)]
pub struct Assembly {
    packet: Packet,
    got: Vec<Bytes>,
}

impl Assembly {
    /// Starts collecting the attachments of `packet`.
    pub fn new(packet: Packet) -> Self {
        let n = packet.attachments;
        Self {
            packet,
            got: Vec::with_capacity(n),
        }
    }

    /// Adds the next attachment; the packet and its attachments once all have come.
    pub fn attach(mut self, bytes: Bytes) -> Result<(Packet, Vec<Bytes>), Self> {
        self.got.push(bytes);
        if self.got.len() >= self.packet.attachments {
            Ok((self.packet, self.got))
        } else {
            Err(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets_in_every_form() {
        let p = decode(b"0/ws/celery/tasks,{\"token\":\"t\"}").unwrap();
        assert_eq!(
            (p.kind, p.ns.as_str(), p.data),
            (
                Kind::Connect,
                "/ws/celery/tasks",
                Some(json!({ "token": "t" }))
            )
        );
        assert_eq!(decode(b"0").unwrap().ns, "/");
        let p = decode(b"212[\"subscribe\",{\"room\":\"r\"}]").unwrap();
        assert_eq!((p.kind, p.id, p.ns.as_str()), (Kind::Event, Some(12), "/"));
        let p = decode(b"2/a,7[\"x\"]").unwrap();
        assert_eq!((p.ns.as_str(), p.id), ("/a", Some(7)));
        let p = decode(b"51-/a,3[\"up\",{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (Kind::BinaryEvent, 1, Some(3))
        );
        assert_eq!(decode(b"1/a,").unwrap().kind, Kind::Disconnect);
        assert_eq!(decode(b"3/a,5[{\"ok\":1}]").unwrap().id, Some(5));
    }

    #[test]
    fn malformed_packets_are_refused() {
        for bad in [
            &b""[..],
            b"9",
            b"2",
            b"2{\"a\":1}",
            b"2[1]",
            b"2[\"a\"",
            b"0[1]",
            b"1{}",
            b"5[\"a\"]",
            b"5x-[\"a\"]",
            b"511-[\"a\"]",
            b"\xff",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_packets() {
        assert_eq!(
            &encode(Kind::Connect, "/", None, "{\"sid\":\"x\"}")[..],
            b"40{\"sid\":\"x\"}"
        );
        assert_eq!(&encode(Kind::Ack, "/a", Some(3), "[1]")[..], b"43/a,3[1]");
        assert_eq!(
            &encode(Kind::ConnectError, "/a", None, "{\"message\":\"no\"}")[..],
            b"44/a,{\"message\":\"no\"}"
        );
    }

    #[test]
    fn attachments_complete_a_binary_packet() {
        let p = decode(
            b"52-[\"up\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
        )
        .unwrap();
        let a = Assembly::new(p);
        let a = a.attach(Bytes::from_static(b"one")).unwrap_err();
        let (p, got) = a.attach(Bytes::from_static(b"two")).unwrap();
        assert_eq!((p.kind, got.len()), (Kind::BinaryEvent, 2));
    }
}
