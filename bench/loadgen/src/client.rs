//! One Socket.IO client over WebSocket: connect with a token, subscribe to a room,
//! then record the latency of every benchmark event it receives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::eio::{self, Packet};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest each handshake step (open, namespace connect, subscribe) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how every client connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://host:port/socket.io/?EIO=4&transport=websocket`.
    pub url: String,
    /// Socket.IO namespace, `/` by default.
    pub namespace: String,
    /// Room to subscribe to.
    pub room: String,
    /// JWT sent as `auth.token`.
    pub token: String,
}

/// What the publisher and the clients share: when each event was sent.
pub struct Clock {
    /// Zero point of every timestamp.
    pub start: Instant,
    /// Send time of event `n` in ns since `start`, plus one; 0 = not sent yet.
    pub sent: Vec<AtomicU64>,
    /// Deliveries so far, across all clients.
    pub delivered: AtomicU64,
}

impl Clock {
    /// A clock for `events` events.
    pub fn new(events: u64) -> Self {
        Self {
            start: Instant::now(),
            sent: (0..events).map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Publish→receive latency of each first delivery, in µs.
    pub latencies_us: Vec<u32>,
    /// Deliveries of an event this client already had.
    pub duplicates: u64,
    /// Ids that were never published (should stay 0).
    pub unknown: u64,
    /// When the last delivery arrived, ns since the clock's start.
    pub last_ns: u64,
    /// Why the server ended the connection before the run did (`closing {reason}`, or
    /// how it ended); `None` if it stayed up.
    pub ended_early: Option<String>,
}

/// Connects, authenticates and subscribes; returns the open socket.
pub async fn connect(target: &Target) -> anyhow::Result<Ws> {
    let (mut ws, _) = step(
        "WebSocket connect",
        tokio_tungstenite::connect_async(&target.url),
    )
    .await?
    .map_err(anyhow::Error::from)?;
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

/// Runs one handshake step within [`HANDSHAKE_TIMEOUT`], naming it if it times out.
async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .with_context(|| format!("timed out waiting for {what}"))
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
pub async fn receive(mut ws: Ws, clock: Arc<Clock>, mut stop: watch::Receiver<bool>) -> Received {
    let mut got = Received::default();
    let mut seen = vec![false; clock.sent.len()];
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
            Packet::Event { body, .. } => record(&clock, &mut seen, &mut got, body),
            Packet::Close => break Some("disconnected".to_owned()),
            _ => {}
        }
    };
    got.ended_early = ended.map(|how| closing.unwrap_or(how));
    let _ = ws.close(None).await;
    got
}

fn record(clock: &Clock, seen: &mut [bool], got: &mut Received, body: &str) {
    let now = clock.now_ns();
    for id in eio::event_ids(body) {
        let sent = clock
            .sent
            .get(id as usize)
            .map(|s| s.load(Ordering::Acquire));
        match (seen.get_mut(id as usize), sent) {
            (Some(true), _) => got.duplicates += 1,
            (Some(slot), Some(sent)) if sent > 0 => {
                *slot = true;
                let us = now.saturating_sub(sent - 1) / 1000;
                got.latencies_us.push(us.min(u64::from(u32::MAX)) as u32);
                got.last_ns = now;
                clock.delivered.fetch_add(1, Ordering::Relaxed);
            }
            _ => got.unknown += 1,
        }
    }
}
