//! The native WebSocket client: `GET /ws?access_token=…&topics=<room>`. The server's
//! first message (Vigil's `connected`) says the subscription is in place; after it,
//! every text message is one event.

use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{step, Received, Recorder, Target};

/// A client WebSocket on a plain TCP stream.
pub type Ws = WebSocketStream<TcpStream>;

/// Read buffer per client. tungstenite's default (128 KiB) times 50 000 clients would
/// be 6 GiB; benchmark messages are under 1 KiB and a bigger one still fits.
const READ_BUFFER: usize = 4096;

/// The WebSocket handshake for `path` on an open TCP stream.
pub async fn open(tcp: TcpStream, target: &Target) -> anyhow::Result<Ws> {
    let server = crate::net::authority(&target.base);
    let url = format!("ws://{server}{}", target.path());
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let (ws, _) = step(
        "WebSocket handshake",
        tokio_tungstenite::client_async_with_config(url, tcp, Some(config)),
    )
    .await??;
    Ok(ws)
}

/// Connects and waits for the server's first message.
pub async fn connect(tcp: TcpStream, target: &Target) -> anyhow::Result<Ws> {
    let mut ws = open(tcp, target).await?;
    let first = step("the first message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => return Ok(()),
                Some(Ok(Message::Close(frame))) => {
                    anyhow::bail!("closed by the server: {frame:?}")
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("connection ended before the first message"),
            }
        }
    });
    first.await??;
    Ok(ws)
}

/// Receives until `stop`, recording the events of every text message.
pub async fn receive(mut ws: Ws, mut rec: Recorder, mut stop: watch::Receiver<bool>) -> Received {
    let ended = loop {
        let msg = tokio::select! {
            msg = ws.next() => msg,
            _ = stop.wait_for(|s| *s) => break None,
        };
        match msg {
            Some(Ok(Message::Text(text))) => rec.record(&text),
            Some(Ok(Message::Close(frame))) => {
                break Some(frame.map_or("closed".to_owned(), |f| f.reason.to_string()))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(format!("error: {e}")),
            None => break Some("closed".to_owned()),
        }
    };
    rec.got.ended_early = ended;
    let _ = ws.close(None).await;
    rec.got
}
