//! One upgraded native WebSocket: `GET /ws?access_token=…&topics=a,b`. It joins its
//! topics' rooms, says `{"type":"connected"}`, and then each event is one text message
//! (the published data). The client's frames are read only to answer pings and close.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::frame::{self, CLOSE, PING, PONG, TEXT};
use crate::hub::{Hub, Kind, QUEUE};

/// Largest client frame; clients only send control frames here.
const MAX_PAYLOAD: usize = 64 * 1024;

/// Serves the socket until either side ends it; `read_buf` is what the client sent
/// after its upgrade request.
pub async fn serve(hub: Arc<Hub>, stream: TcpStream, read_buf: Bytes, rooms: Vec<String>) {
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(crate::writer::write_loop(wr, rx));
    let id = hub.next_id();
    for room in &rooms {
        hub.join(room, id, Kind::Ws, tx.clone());
    }
    let _ = tx.try_send(frame::encode(TEXT, br#"{"type":"connected"}"#));
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&read_buf);
    drop(read_buf); // it may hold on to hyper's whole read buffer
    'read: loop {
        while let Ok(Some(f)) = frame::parse(&mut buf, MAX_PAYLOAD) {
            match f.opcode {
                CLOSE => {
                    let code = f.payload.get(..2).unwrap_or_default();
                    let _ = tx.try_send(frame::encode(CLOSE, code));
                    break 'read;
                }
                PING => {
                    let _ = tx.try_send(frame::encode(PONG, &f.payload));
                }
                _ => {}
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    for room in &rooms {
        hub.leave(room, id);
    }
}
