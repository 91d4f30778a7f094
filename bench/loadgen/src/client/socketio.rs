//! The Socket.IO client over WebSocket: open, namespace connect with `auth.token`,
//! `subscribe {room}` until `subscribed`, then every event packet.

use anyhow::bail;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::{step, Received, Recorder, Target};
use crate::eio::{self, Packet};

pub use super::ws::Ws;

/// Connects, authenticates and subscribes; returns the open socket.
pub async fn connect(tcp: TcpStream, target: &Target) -> anyhow::Result<Ws> {
    let mut ws = super::ws::open(tcp, target).await?;
    step(
        "Engine.IO open",
        wait_for(&mut ws, |p| matches!(p, Packet::Open)),
    )
    .await??;
    let auth = json!({ "token": target.token });
    ws.send(Message::text(eio::connect(&target.namespace, &auth)))
        .await?;
    step(
        "namespace connect",
        wait_for(&mut ws, |p| matches!(p, Packet::Connected)),
    )
    .await??;
    let room = json!({ "room": target.room });
    let subscribe = eio::event(&target.namespace, "subscribe", &room);
    ws.send(Message::text(subscribe)).await?;
    let subscribed = |p: &Packet| {
        matches!(
            p,
            Packet::Event {
                name: "subscribed",
                ..
            }
        )
    };
    step("`subscribed`", wait_for(&mut ws, subscribed)).await??;
    Ok(ws)
}

/// Reads until a packet `wanted` accepts, answering pings; refusals are errors.
async fn wait_for(ws: &mut Ws, wanted: impl Fn(&Packet) -> bool) -> anyhow::Result<()> {
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let packet = eio::parse(&text);
        if wanted(&packet) {
            return Ok(());
        }
        match packet {
            Packet::Ping => ws.send(Message::text(eio::PONG)).await?,
            Packet::ConnectError(why) => bail!("refused: {why}"),
            Packet::Close => bail!("closed by the server"),
            _ => {}
        }
    }
    bail!("connection ended during the handshake")
}

/// Receives until `stop` turns true (or the server closes), recording each event once.
pub async fn receive(mut ws: Ws, mut rec: Recorder, mut stop: watch::Receiver<bool>) -> Received {
    let mut closing = None;
    let ended = loop {
        let msg = tokio::select! {
            msg = ws.next() => msg,
            _ = stop.wait_for(|s| *s) => break None,
        };
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => break Some(format!("error: {e}")),
            None => break Some("closed".to_owned()),
        };
        match eio::parse(&text) {
            Packet::Ping if ws.send(Message::text(eio::PONG)).await.is_err() => {
                break Some("closed".to_owned())
            }
            Packet::Event {
                name: "closing",
                body,
            } => closing = Some(body.to_owned()),
            Packet::Event { body, .. } => rec.record(body),
            Packet::Close => break Some("disconnected".to_owned()),
            _ => {}
        }
    };
    rec.got.ended_early = ended.map(|how| closing.unwrap_or(how));
    let _ = ws.close(None).await;
    rec.got
}
