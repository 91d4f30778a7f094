//! One benchmark client, over any of the three transports: connect with a token,
//! subscribe to a room, then record the latency of every benchmark event received.
//!
//! - [`socketio`]: Engine.IO v4 / Socket.IO v5 over WebSocket, `subscribe {room}`.
//! - [`ws`]: the native WebSocket, `GET /ws?access_token=…&topics=<room>`.
//! - [`sse`]: Server-Sent Events, `GET /events?access_token=…&topics=<room>`.

pub mod body;
pub mod socketio;
pub mod sse;
pub mod ws;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::watch;

use crate::ids;

/// Longest each handshake step (open, namespace connect, subscribe) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Which transport the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Socket.IO over WebSocket.
    Socketio,
    /// Server-Sent Events.
    Sse,
    /// The native WebSocket.
    Ws,
}

impl Transport {
    /// The name in tables and result files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Socketio => "Socket.IO",
            Self::Sse => "SSE",
            Self::Ws => "WebSocket",
        }
    }
}

/// Where and how every client connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// The transport.
    pub transport: Transport,
    /// The server's HTTP base, e.g. `http://127.0.0.1:3000`.
    pub base: String,
    /// Socket.IO namespace, `/` by default.
    pub namespace: String,
    /// Room (topic) to subscribe to.
    pub room: String,
    /// JWT: Socket.IO's `auth.token`, the others' `access_token`.
    pub token: String,
}

impl Target {
    /// The path and query the transport connects to (SSE and native WebSocket put the
    /// token and room in the query).
    pub fn path(&self) -> String {
        match self.transport {
            Transport::Socketio => "/socket.io/?EIO=4&transport=websocket".to_owned(),
            Transport::Sse => format!("/events?access_token={}&topics={}", self.token, self.room),
            Transport::Ws => format!("/ws?access_token={}&topics={}", self.token, self.room),
        }
    }
}

/// What the publisher and the clients share: when each event was sent.
pub struct Clock {
    /// Zero point of every timestamp.
    pub start: Instant,
    /// The zero point as wall-clock time (ns since the Unix epoch), which a shard
    /// process ([`crate::shard`]) takes as its own zero point.
    pub origin_unix_ns: u64,
    /// Send time of event `n` in ns since `start`, plus one; 0 = not sent yet.
    pub sent: Vec<AtomicU64>,
    /// Deliveries so far, across all clients.
    pub delivered: AtomicU64,
    /// The publisher is another process: send times are learnt only after the run,
    /// so deliveries are kept with their arrival time until then
    /// ([`Received::resolve`]).
    pub deferred: bool,
}

impl Clock {
    /// A clock for `events` events.
    pub fn new(events: u64) -> Self {
        Self {
            start: Instant::now(),
            origin_unix_ns: unix_ns(),
            sent: (0..events).map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicU64::new(0),
            deferred: false,
        }
    }

    /// A shard's clock for `events` events published by another process, whose clock
    /// started at `origin_unix_ns`: both count from the same instant (to the
    /// wall clock's precision, microseconds on Linux), so latencies are comparable.
    pub fn shard(events: u64, origin_unix_ns: u64) -> Self {
        let since = Duration::from_nanos(unix_ns().saturating_sub(origin_unix_ns));
        let now = Instant::now();
        Self {
            start: now.checked_sub(since).unwrap_or(now),
            origin_unix_ns,
            deferred: true,
            ..Self::new(events)
        }
    }

    /// Nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Every event's send time as stored in [`Clock::sent`] (0 = never sent).
    pub fn sent_times(&self) -> Vec<u64> {
        self.sent
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .collect()
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
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
    /// Why the server ended the connection before the run did (its closing message,
    /// or how it ended); `None` if it stayed up.
    pub ended_early: Option<String>,
    /// With a deferred clock: (event id, arrival ns) of each first delivery whose
    /// send time is not known yet.
    pub pending: Vec<(u32, u64)>,
}

impl Received {
    /// Turns pending deliveries into latencies, given every event's send time as in
    /// [`Clock::sent`]; a delivery of an event never sent counts as unknown.
    pub fn resolve(&mut self, sent: &[u64]) {
        for (id, at) in std::mem::take(&mut self.pending) {
            match sent.get(id as usize) {
                Some(&s) if s > 0 => {
                    let us = at.saturating_sub(s - 1) / 1000;
                    self.latencies_us.push(us.min(u64::from(u32::MAX)) as u32);
                }
                _ => self.unknown += 1,
            }
        }
    }
}

/// One client's record of the events it got: each id once, with its latency.
pub struct Recorder {
    clock: Arc<Clock>,
    seen: Vec<bool>,
    /// What was recorded so far.
    pub got: Received,
}

impl Recorder {
    /// A recorder for the events of `clock`.
    pub fn new(clock: Arc<Clock>) -> Self {
        let seen = vec![false; clock.sent.len()];
        Self {
            clock,
            seen,
            got: Received::default(),
        }
    }

    /// Records every benchmark event id in `body` (one message may carry a batch).
    pub fn record(&mut self, body: &str) {
        let now = self.clock.now_ns();
        for id in ids::event_ids(body) {
            let sent = self
                .clock
                .sent
                .get(id as usize)
                .map(|s| s.load(Ordering::Acquire));
            match (self.seen.get_mut(id as usize), sent) {
                (Some(true), _) => self.got.duplicates += 1,
                (Some(slot), Some(0)) if self.clock.deferred => {
                    *slot = true;
                    self.got.pending.push((id as u32, now));
                    self.got.last_ns = now;
                    self.clock.delivered.fetch_add(1, Ordering::Relaxed);
                }
                (Some(slot), Some(sent)) if sent > 0 => {
                    *slot = true;
                    let us = now.saturating_sub(sent - 1) / 1000;
                    self.got
                        .latencies_us
                        .push(us.min(u64::from(u32::MAX)) as u32);
                    self.got.last_ns = now;
                    self.clock.delivered.fetch_add(1, Ordering::Relaxed);
                }
                _ => self.got.unknown += 1,
            }
        }
    }
}

/// An open, subscribed client.
pub enum Conn {
    /// Socket.IO over WebSocket.
    Socketio(socketio::Ws),
    /// The native WebSocket.
    Ws(socketio::Ws),
    /// An SSE stream.
    Sse(sse::Stream),
}

/// Connects from `source` (if set), authenticates and subscribes.
pub async fn connect(target: &Target, source: Option<IpAddr>) -> anyhow::Result<Conn> {
    let server = crate::net::authority(&target.base);
    let tcp = step("TCP connect", crate::net::connect(server, source)).await??;
    Ok(match target.transport {
        Transport::Socketio => Conn::Socketio(socketio::connect(tcp, target).await?),
        Transport::Ws => Conn::Ws(ws::connect(tcp, target).await?),
        Transport::Sse => Conn::Sse(sse::connect(tcp, target).await?),
    })
}

/// Receives until `stop` turns true (or the server closes), recording each event once.
pub async fn receive(conn: Conn, clock: Arc<Clock>, stop: watch::Receiver<bool>) -> Received {
    let rec = Recorder::new(clock);
    match conn {
        Conn::Socketio(ws) => socketio::receive(ws, rec, stop).await,
        Conn::Ws(ws) => ws::receive(ws, rec, stop).await,
        Conn::Sse(stream) => sse::receive(stream, rec, stop).await,
    }
}

/// Runs one handshake step within [`HANDSHAKE_TIMEOUT`], naming it if it times out.
pub async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .with_context(|| format!("timed out waiting for {what}"))
}
