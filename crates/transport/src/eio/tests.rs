//! The layer without a client library: sessions fed packets directly, and a WebSocket
//! connection driven over an in-memory stream with paused time. (The official client
//! runs against it in `tests/official_client.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::packet::Packet;
use super::session::Transport;
use super::{Config, Event, Handler, Refusal, Server, SocketRef};
use crate::conn::Outgoing;

/// Accepts `/` (token `ok`), echoes events in the ack, counts disconnects.
#[derive(Default)]
struct Echo {
    gone: AtomicUsize,
    attachments: Mutex<Vec<Bytes>>,
}

impl Handler for Echo {
    type Socket = ();

    async fn connect(&self, s: &SocketRef, auth: Option<Value>) -> Result<(), Refusal> {
        match (s.ns(), auth.as_ref().and_then(|a| a["token"].as_str())) {
            ("/", Some("ok")) => Ok(()),
            _ => Err(Refusal {
                message: "no".into(),
                data: Some(json!({ "why": 1 })),
            }),
        }
    }

    async fn event(&self, _: SocketRef, _: Arc<()>, e: Event) {
        self.attachments.lock().unwrap().extend(e.attachments);
        if let Some(ack) = e.ack {
            let _ = ack.send(&json!({ "name": e.name, "args": e.args }));
        }
    }

    fn disconnect(&self, _: &SocketRef, _: &(), _: &str) {
        self.gone.fetch_add(1, Ordering::SeqCst);
    }
}

fn server() -> Arc<Server<Echo>> {
    let config = Config {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    Server::new(Echo::default(), config)
}

fn msg(text: &'static str) -> Packet {
    Packet::Message(Bytes::from_static(text.as_bytes()))
}

/// The next text the session queued (waiting for the application's task).
async fn next_text(s: &super::Session<Echo>) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.queue.recv_many(&mut out, 1))
        .await
        .expect("something queued");
    match out.pop() {
        Some(Outgoing::Text(t)) => String::from_utf8(t.to_vec()).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn joins_events_acks_and_leaving() {
    let server = server();
    let s = server.create(Transport::Polling);
    s.receive(&server, msg("0{\"token\":\"ok\"}")).unwrap();
    assert!(next_text(&s).await.starts_with("40{\"sid\":\""));
    s.receive(&server, msg("27[\"hi\",1,{\"a\":2}]")).unwrap();
    assert_eq!(
        next_text(&s).await,
        "437[{\"args\":[1,{\"a\":2}],\"name\":\"hi\"}]"
    );
    s.receive(&server, msg("1")).unwrap();
    assert_eq!(server.handler.gone.load(Ordering::SeqCst), 1);
    // Events of a namespace not joined are ignored.
    s.receive(&server, msg("28[\"hi\"]")).unwrap();
    assert!(s.queue.is_empty());
}

#[tokio::test]
async fn refusals_carry_message_and_data() {
    let server = server();
    let s = server.create(Transport::Polling);
    s.receive(&server, msg("0/nope,{}")).unwrap();
    assert_eq!(
        next_text(&s).await,
        "44/nope,{\"data\":{\"why\":1},\"message\":\"no\"}"
    );
}

#[tokio::test]
async fn a_binary_event_waits_for_its_attachment() {
    let server = server();
    let s = server.create(Transport::Polling);
    s.receive(&server, msg("0{\"token\":\"ok\"}")).unwrap();
    next_text(&s).await;
    s.receive(
        &server,
        msg("51-3[\"up\",{\"_placeholder\":true,\"num\":0}]"),
    )
    .unwrap();
    assert!(s.queue.is_empty(), "nothing until the attachment");
    s.receive(&server, Packet::Binary(Bytes::from_static(b"\x01\x02")))
        .unwrap();
    assert!(next_text(&s)
        .await
        .starts_with("433[{\"args\":[{\"_placeholder\":true"));
    assert_eq!(
        *server.handler.attachments.lock().unwrap(),
        [Bytes::from_static(b"\x01\x02")]
    );
    assert!(
        s.receive(&server, Packet::Binary(Bytes::new())).is_err(),
        "a stray attachment"
    );
}

#[tokio::test]
async fn closing_tells_the_application_and_forgets_the_session() {
    let server = server();
    let s = server.create(Transport::Polling);
    s.receive(&server, msg("0{\"token\":\"ok\"}")).unwrap();
    next_text(&s).await;
    assert_eq!(s.farewell(), [Bytes::from_static(b"41")]);
    s.close(&server, "bye");
    s.close(&server, "twice");
    assert_eq!(server.handler.gone.load(Ordering::SeqCst), 1);
    assert!(server.session(&s.sid).is_none());
    assert_eq!(s.queue.closed().as_deref(), Some("bye"));
}

/// A masked client text frame.
fn client_frame(text: &str) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let mut out = BytesMut::new();
    out.put_u8(0x81);
    out.put_u8(0x80 | text.len() as u8);
    out.put_slice(&key);
    out.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i & 3]));
    out.to_vec()
}

/// Reads one unmasked server text frame (short ones only).
async fn server_text(io: &mut DuplexStream) -> String {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 0x81, "a final text frame");
    let len = match head[1] {
        126 => io.read_u16().await.unwrap() as usize,
        n => n as usize,
    };
    let mut body = vec![0; len];
    io.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_websocket_session_pings_and_ends_when_the_client_goes_quiet() {
    let server = server();
    let (mut client, io) = tokio::io::duplex(1 << 16);
    let run = tokio::spawn(super::driver::run(server.clone(), None, io));
    let open = server_text(&mut client).await;
    assert!(
        open.starts_with("0{\"sid\":\"") && open.contains("\"upgrades\":[]"),
        "{open}"
    );
    client
        .write_all(&client_frame("40{\"token\":\"ok\"}"))
        .await
        .unwrap();
    assert!(server_text(&mut client).await.starts_with("40{\"sid\""));
    // Answered pings keep it up.
    for _ in 0..3 {
        assert_eq!(server_text(&mut client).await, "2");
        client.write_all(&client_frame("3")).await.unwrap();
    }
    assert_eq!(server.len(), 1);
    // A ping left unanswered ends it within the timeout.
    assert_eq!(server_text(&mut client).await, "2");
    tokio::time::sleep(Duration::from_millis(250)).await;
    tokio::time::timeout(Duration::from_secs(2), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.len(), 0);
    assert_eq!(server.handler.gone.load(Ordering::SeqCst), 1);
}
