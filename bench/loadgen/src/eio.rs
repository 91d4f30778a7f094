//! Engine.IO v4 / Socket.IO v5 text packets, as much as a subscribing client needs:
//! the open packet, ping, namespace connect and its error, and events.

/// One packet the server sent, classified.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Engine.IO `0{…}`: the session is open.
    Open,
    /// Engine.IO `2`: answer with [`PONG`].
    Ping,
    /// Engine.IO `1` or Socket.IO `41`: the connection or namespace is gone.
    Close,
    /// Socket.IO `40`: the namespace accepted us.
    Connected,
    /// Socket.IO `44{…}`: the namespace refused us; the JSON says why.
    ConnectError(&'a str),
    /// Socket.IO `42["name",…]`; `body` is the whole JSON array.
    Event { name: &'a str, body: &'a str },
    /// Anything else (acks, upgrades, noop).
    Other,
}

/// Engine.IO pong, the answer to a ping.
pub const PONG: &str = "3";

/// Classifies one text frame.
pub fn parse(frame: &str) -> Packet<'_> {
    match frame.as_bytes().first() {
        Some(b'0') => Packet::Open,
        Some(b'1') => Packet::Close,
        Some(b'2') => Packet::Ping,
        Some(b'4') => socketio(&frame[1..]),
        _ => Packet::Other,
    }
}

fn socketio(packet: &str) -> Packet<'_> {
    let Some(kind) = packet.as_bytes().first() else {
        return Packet::Other;
    };
    let rest = skip_ack_id(skip_namespace(&packet[1..]));
    match kind {
        b'0' => Packet::Connected,
        b'1' => Packet::Close,
        b'4' => Packet::ConnectError(rest),
        b'2' => Packet::Event {
            name: event_name(rest).unwrap_or(""),
            body: rest,
        },
        _ => Packet::Other,
    }
}

/// `/ns,rest` → `rest`; the default namespace has no prefix.
fn skip_namespace(s: &str) -> &str {
    if s.starts_with('/') {
        s.find(',').map_or("", |i| &s[i + 1..])
    } else {
        s
    }
}

fn skip_ack_id(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_ascii_digit())
}

/// `["name",…]` → `name` (event names never need escaping here).
fn event_name(body: &str) -> Option<&str> {
    let rest = body.strip_prefix("[\"")?;
    rest.find('"').map(|i| &rest[..i])
}

/// The namespace connect packet with the `auth` payload.
pub fn connect(namespace: &str, auth: &serde_json::Value) -> String {
    format!("40{}{auth}", ns_prefix(namespace))
}

/// An event packet `42["name",data]`.
pub fn event(namespace: &str, name: &str, data: &serde_json::Value) -> String {
    format!(
        "42{}{}",
        ns_prefix(namespace),
        serde_json::json!([name, data])
    )
}

fn ns_prefix(namespace: &str) -> String {
    if namespace == "/" || namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace},")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_io_packets() {
        assert_eq!(parse(r#"0{"sid":"a","pingInterval":25000}"#), Packet::Open);
        assert_eq!(parse("2"), Packet::Ping);
        assert_eq!(parse("1"), Packet::Close);
        assert_eq!(parse("6"), Packet::Other);
    }

    #[test]
    fn socket_io_packets_in_any_namespace() {
        assert_eq!(parse(r#"40{"sid":"x"}"#), Packet::Connected);
        assert_eq!(
            parse(r#"40/ws/celery/tasks,{"sid":"x"}"#),
            Packet::Connected
        );
        assert_eq!(
            parse(r#"44{"message":"401 unauthorized"}"#),
            Packet::ConnectError(r#"{"message":"401 unauthorized"}"#)
        );
        let body = r#"["task_update",{"data":{"id":"lg7"}}]"#;
        for frame in [
            format!("42{body}"),
            format!("42/a/b,{body}"),
            format!("4212{body}"),
        ] {
            assert_eq!(
                parse(&frame),
                Packet::Event {
                    name: "task_update",
                    body
                }
            );
        }
    }

    #[test]
    fn outgoing_packets() {
        let auth = json!({ "token": "t" });
        assert_eq!(connect("/", &auth), r#"40{"token":"t"}"#);
        assert_eq!(connect("/ns", &auth), r#"40/ns,{"token":"t"}"#);
        assert_eq!(
            event("/", "subscribe", &json!({ "room": "r" })),
            r#"42["subscribe",{"room":"r"}]"#
        );
    }
}
