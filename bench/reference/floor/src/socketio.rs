//! One upgraded Socket.IO connection: Engine.IO v4 and Socket.IO v5 text packets over
//! the WebSocket frames of [`crate::frame`].
//!
//! Each connection has two tasks: the reader (handshake, heartbeat, `subscribe`) and
//! the writer ([`crate::writer`]), which alone owns the write half.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{self, Instant};

use crate::frame::{self, Frame, TooBig, CLOSE, CONTINUATION, PING, PONG, TEXT};
use crate::hub::{Hub, Kind, QUEUE};
use crate::jwt;

/// What the open packet announces.
const PING_INTERVAL: Duration = Duration::from_millis(25_000);
const PING_TIMEOUT: Duration = Duration::from_millis(20_000);
pub const MAX_PAYLOAD: usize = 1_000_000;
/// Engine.IO ping `2` as a text frame.
const PING_FRAME: &[u8] = b"\x81\x012";

/// Serves one upgraded WebSocket until either side ends it; `read_buf` is what the
/// client sent after its upgrade request.
pub async fn serve(hub: Arc<Hub>, stream: TcpStream, read_buf: Bytes) {
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(crate::writer::write_loop(wr, rx));
    let mut conn = Conn {
        id: hub.next_id(),
        hub,
        tx,
        connected: false,
        rooms: Vec::new(),
    };
    let open = json!({
        "sid": conn.hub.sid(), "upgrades": [],
        "pingInterval": PING_INTERVAL.as_millis() as u64,
        "pingTimeout": PING_TIMEOUT.as_millis() as u64,
        "maxPayload": MAX_PAYLOAD,
    });
    conn.send_text(&format!("0{open}"));
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&read_buf);
    drop(read_buf); // it may hold on to hyper's whole read buffer
    conn.read_loop(rd, buf).await;
    conn.leave_all();
    // Dropping `conn.tx`, the last sender, lets the writer flush and close.
}

struct Conn {
    hub: Arc<Hub>,
    id: u64,
    tx: mpsc::Sender<Bytes>,
    /// Connected to the namespace `/`.
    connected: bool,
    rooms: Vec<String>,
}

impl Conn {
    fn send(&self, frame: Bytes) {
        // A client whose queue is full is not reading; replies to it may go.
        let _ = self.tx.try_send(frame);
    }

    fn send_text(&self, text: &str) {
        self.send(frame::encode(TEXT, text.as_bytes()));
    }

    fn leave_all(&mut self) {
        for room in self.rooms.drain(..) {
            self.hub.leave(&room, self.id);
        }
    }

    /// Reads frames until the client closes, errs or misses the heartbeat.
    async fn read_loop(&mut self, mut rd: OwnedReadHalf, mut buf: BytesMut) {
        let mut partial = None;
        let mut ping = time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        let quiet = time::sleep(PING_INTERVAL + PING_TIMEOUT);
        tokio::pin!(quiet);
        loop {
            loop {
                match frame::parse(&mut buf, MAX_PAYLOAD) {
                    Ok(Some(f)) => {
                        if !self.on_frame(f, &mut partial) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(TooBig) => {
                        self.send(frame::encode(CLOSE, &1009u16.to_be_bytes()));
                        return;
                    }
                }
            }
            tokio::select! {
                read = rd.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => quiet.as_mut().reset(Instant::now() + PING_INTERVAL + PING_TIMEOUT),
                },
                _ = ping.tick() => self.send(Bytes::from_static(PING_FRAME)),
                () = &mut quiet => return, // no pong in time
            }
        }
    }

    /// Handles one frame; false ends the connection.
    fn on_frame(&mut self, f: Frame, partial: &mut Option<(u8, BytesMut)>) -> bool {
        match f.opcode {
            CLOSE => {
                let code = f.payload.get(..2).unwrap_or_default();
                self.send(frame::encode(CLOSE, code));
                false
            }
            PING => {
                self.send(frame::encode(PONG, &f.payload));
                true
            }
            PONG => true,
            CONTINUATION => {
                let Some((_, message)) = partial.as_mut() else {
                    return false;
                };
                if message.len() + f.payload.len() > MAX_PAYLOAD {
                    return false;
                }
                message.extend_from_slice(&f.payload);
                match partial.take() {
                    Some((opcode, message)) if f.fin => self.on_message(opcode, &message),
                    other => {
                        *partial = other;
                        true
                    }
                }
            }
            opcode if !f.fin => {
                *partial = Some((opcode, f.payload));
                true
            }
            opcode => self.on_message(opcode, &f.payload),
        }
    }

    /// One whole message; binary ones are ignored.
    fn on_message(&mut self, opcode: u8, payload: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(payload) else {
            return opcode != TEXT;
        };
        match (opcode, text.as_bytes().first()) {
            (TEXT, Some(b'1')) => false, // Engine.IO close
            (TEXT, Some(b'4')) => {
                self.on_socketio(&text[1..]);
                true
            }
            _ => true, // pong `3`, noop, binary
        }
    }

    /// A Socket.IO packet: `<type>[/namespace,][ack id][json]`.
    fn on_socketio(&mut self, packet: &str) {
        let (Some(&kind), Some(rest)) = (packet.as_bytes().first(), packet.get(1..)) else {
            return;
        };
        let (namespace, rest) = match rest.starts_with('/') {
            true => rest.split_once(',').unwrap_or((rest, "")),
            false => ("/", rest),
        };
        match kind {
            b'0' => self.on_connect(namespace, rest),
            b'1' if namespace == "/" => {
                self.leave_all();
                self.connected = false;
            }
            b'2' if namespace == "/" && self.connected => {
                self.on_event(rest.trim_start_matches(|c: char| c.is_ascii_digit()));
            }
            _ => {}
        }
    }

    /// `CONNECT` with `{token}`: `40{"sid"}` if the JWT is good, else `CONNECT_ERROR`.
    fn on_connect(&mut self, namespace: &str, auth: &str) {
        if namespace != "/" {
            self.send_text(&format!(
                r#"44{namespace},{{"message":"Invalid namespace"}}"#
            ));
            return;
        }
        let auth: Value = serde_json::from_str(auth).unwrap_or(Value::Null);
        let token = auth.get("token").and_then(Value::as_str);
        if token.is_some_and(|t| jwt::verify(&self.hub.secret, t)) {
            self.connected = true;
            self.send_text(&format!("40{}", json!({ "sid": self.hub.sid() })));
        } else {
            self.send_text(r#"44{"message":"401 unauthorized"}"#);
        }
    }

    /// `subscribe {room}` (or `subscribe "room"`) joins and answers `subscribed {room}`.
    fn on_event(&mut self, body: &str) {
        let Ok(Value::Array(args)) = serde_json::from_str::<Value>(body) else {
            return;
        };
        if args.first().and_then(Value::as_str) != Some("subscribe") {
            return;
        }
        let room = match args.get(1) {
            Some(Value::String(room)) => Some(room.as_str()),
            Some(payload) => payload.get("room").and_then(Value::as_str),
            None => None,
        };
        let Some(room) = room else {
            return;
        };
        if !self.rooms.iter().any(|r| r == room) {
            self.hub
                .join(room, self.id, Kind::Socketio, self.tx.clone());
            self.rooms.push(room.to_owned());
        }
        let reply = json!(["subscribed", { "room": room }]);
        self.send_text(&format!("42{reply}"));
    }
}
