//! Server-Sent Events without an HTTP library: `GET /events?access_token=…&topics=a,b`
//! is taken off the listener before hyper sees it ([`is_sse`]), answered with a
//! response whose body is not chunked but ends with the connection (valid HTTP/1.1),
//! so each SSE message's bytes are the same for every connection.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::hub::{Hub, Kind, QUEUE};

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// The response head and the first message, which tells the client it is subscribed.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\nevent: connected\ndata: {}\n\n";
const UNAUTHORIZED: &[u8] = b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 28\r\nconnection: close\r\n\r\n{\"error\":\"401 unauthorized\"}";

/// Whether a connection whose first bytes are `start` is an SSE subscription.
pub fn is_sse(start: &[u8]) -> bool {
    start.starts_with(b"GET /events?")
}

/// Serves one SSE subscription until the client goes away.
pub async fn serve(hub: Arc<Hub>, mut stream: TcpStream) {
    let Some(target) = read_head(&mut stream).await else {
        return;
    };
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let token = crate::param(query, "access_token").unwrap_or("");
    if !crate::jwt::verify(&hub.secret, token) {
        let _ = stream.write_all(UNAUTHORIZED).await;
        return;
    }
    let rooms = crate::rooms(query);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let _ = tx.try_send(Bytes::from_static(OK));
    tokio::spawn(crate::writer::write_loop(wr, rx));
    let id = hub.next_id();
    for room in &rooms {
        hub.join(room, id, Kind::Sse, tx.clone());
    }
    // Nothing more comes from the client; reading tells when it has gone.
    let mut sink = [0; 64];
    while matches!(rd.read(&mut sink).await, Ok(1..)) {}
    for room in &rooms {
        hub.leave(room, id);
    }
}

/// Reads the request head; its request target, e.g. `/events?access_token=…`.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1).map(str::to_owned)
}
