//! Engine.IO v4 packets: one per WebSocket message, or several in an HTTP long-polling
//! body separated by the record separator `\x1e` (a binary packet there is `b` and its
//! base64).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;

/// Separates packets in a long-polling body.
pub const SEPARATOR: u8 = 0x1e;
/// The server's ping.
pub const PING: &[u8] = b"2";
/// The answer to a client's upgrade probe.
pub const PONG_PROBE: &[u8] = b"3probe";
/// Tells a long-polling request to end (sent while the session upgrades).
pub const NOOP: &[u8] = b"6";

/// A packet a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `1`: the client closes the session.
    Close,
    /// `2probe`: the client probes the WebSocket it upgrades to.
    PingProbe,
    /// `3`: the answer to the server's ping.
    Pong,
    /// `4…`: a message (a Socket.IO packet), without the `4`.
    Message(Bytes),
    /// A binary message (a Socket.IO attachment).
    Binary(Bytes),
    /// `5`: the client switches to the WebSocket it probed.
    Upgrade,
    /// `6`: nothing.
    Noop,
}

/// A packet the protocol does not allow a client to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPacket(pub String);

/// Decodes one text packet (a WebSocket text message, or one record of a body).
pub fn decode(text: Bytes) -> Result<Packet, BadPacket> {
    let bad = |t: &Bytes| {
        BadPacket(format!(
            "unexpected packet {:?}",
            String::from_utf8_lossy(&t[..t.len().min(40)])
        ))
    };
    match text.first() {
        Some(b'1') if text.len() == 1 => Ok(Packet::Close),
        Some(b'2') if &text[1..] == b"probe" => Ok(Packet::PingProbe),
        // A client ping (v3 clients) or its pong: both prove it is alive.
        Some(b'2' | b'3') if text.len() == 1 || &text[1..] == b"probe" => Ok(Packet::Pong),
        Some(b'4') => Ok(Packet::Message(text.slice(1..))),
        Some(b'5') if text.len() == 1 => Ok(Packet::Upgrade),
        Some(b'6') if text.len() == 1 => Ok(Packet::Noop),
        _ => Err(bad(&text)),
    }
}

/// Decodes a long-polling body.
pub fn decode_body(body: Bytes) -> Result<Vec<Packet>, BadPacket> {
    let mut out = Vec::new();
    let mut start = 0;
    while start <= body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == SEPARATOR)
            .map_or(body.len(), |i| start + i);
        let record = body.slice(start..end);
        out.push(match record.first() {
            Some(b'b') => B64
                .decode(&record[1..])
                .map(|b| Packet::Binary(b.into()))
                .map_err(|_| BadPacket("binary packet is not base64".into()))?,
            _ => decode(record)?,
        });
        start = end + 1;
    }
    Ok(out)
}

/// Appends one packet to a long-polling body under construction.
pub fn append(body: &mut Vec<u8>, text: &[u8]) {
    if !body.is_empty() {
        body.push(SEPARATOR);
    }
    body.extend_from_slice(text);
}

/// Appends one binary packet to a long-polling body (`b` and its base64).
pub fn append_binary(body: &mut Vec<u8>, bytes: &[u8]) {
    if !body.is_empty() {
        body.push(SEPARATOR);
    }
    body.push(b'b');
    body.extend_from_slice(B64.encode(bytes).as_bytes());
}

/// The open packet: `0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}`.
pub fn open(
    sid: &str,
    upgrades: bool,
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: usize,
) -> String {
    let upgrades = if upgrades { "[\"websocket\"]" } else { "[]" };
    format!(
        "0{{\"sid\":\"{sid}\",\"upgrades\":{upgrades},\"pingInterval\":{ping_interval_ms},\"pingTimeout\":{ping_timeout_ms},\"maxPayload\":{max_payload}}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    #[test]
    fn client_packets() {
        assert_eq!(decode(b(b"1")), Ok(Packet::Close));
        assert_eq!(decode(b(b"2probe")), Ok(Packet::PingProbe));
        assert_eq!(decode(b(b"3")), Ok(Packet::Pong));
        assert_eq!(decode(b(b"2")), Ok(Packet::Pong));
        assert_eq!(decode(b(b"42[\"a\"]")), Ok(Packet::Message(b(b"2[\"a\"]"))));
        assert_eq!(decode(b(b"5")), Ok(Packet::Upgrade));
        assert_eq!(decode(b(b"6")), Ok(Packet::Noop));
        for bad in [&b""[..], b"0{}", b"7", b"1x", b"5probe"] {
            assert!(decode(Bytes::from(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bodies_carry_several_packets_and_base64_binary() {
        let body = b(b"42[\"subscribe\",{\"room\":\"r\"}]\x1e3\x1ebAQID");
        assert_eq!(
            decode_body(body).unwrap(),
            [
                Packet::Message(b(b"2[\"subscribe\",{\"room\":\"r\"}]")),
                Packet::Pong,
                Packet::Binary(b(b"\x01\x02\x03")),
            ]
        );
        assert!(decode_body(b(b"b!!!")).is_err());
        assert!(
            decode_body(b(b"4x\x1e")).is_err(),
            "an empty record is no packet"
        );
        let mut out = Vec::new();
        append(&mut out, b"2");
        append_binary(&mut out, b"\x01\x02\x03");
        append(&mut out, b"6");
        assert_eq!(out, b"2\x1ebAQID\x1e6");
    }

    #[test]
    fn the_open_packet_announces_the_session() {
        assert_eq!(
            open("abc", true, 25000, 20000, 1000000),
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }
}
