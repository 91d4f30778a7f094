//! The hub: every push subscriber, and the one task that asks the dispatch component
//! what each of them receives. Connections only read their bounded queue; a
//! connection that cannot keep up is closed with a reason and never slows the others.
//!
//! - this module: the handle ([`Hub`]) connections subscribe through, and what they get
//!   back ([`Subscription`]);
//! - `task`: the hub task: its commands, publishing and replay through the component;
//! - `roster`: the subscribers as the component sees them: one record per distinct
//!   subscription, standing for every connection that shares it;
//! - `queue`: a subscriber's queue and the slow-consumer policy (degrade, reset, close);
//! - `heartbeats`: what the hub's timers do (heartbeats, held updates' `batch_update`);
//! - `frames`: the component's frames as shared payloads.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::config::PushConfig;
use crate::dispatch::{DispatchComponent, Encoding, Filter};
use crate::metrics::Metrics;

mod frames;
mod heartbeats;
mod queue;
mod roster;
mod task;

use queue::Entry;
use roster::Roster;
use task::HubTask;

/// Event telling a connection it now gets latest state only (seed 001's slow consumer).
pub const DEGRADED_EVENT: &str = "degraded";
/// Event telling a Socket.IO client why the server is about to disconnect its socket
/// (SSE's `disconnect` event; Socket.IO reserves that name).
pub const CLOSING_EVENT: &str = "closing";
/// Event telling a degraded connection it gets every update again.
pub const RECOVERED_EVENT: &str = "recovered";

/// Commands queued to the hub before `publish` waits for room.
const COMMAND_QUEUE: usize = 1024;

/// An event as the log hands it over: the envelope and its JSON, made once.
pub use vigil_log::Published;

/// One message as every connection that gets it shares it (kind, seq, bytes).
pub use vigil_transport::conn::payload::Payload;
/// What a connection's queue holds: shared payloads, replies, heartbeats, its end.
pub use vigil_transport::conn::Outgoing as Wire;
/// A connection's bounded queue, written from by its one write path.
pub type Queue = vigil_transport::conn::queue::Queue<Wire>;

/// Close code telling a WebSocket client the server ended its subscription.
pub const CLOSE_SUBSCRIPTION_ENDED: u16 = 4000;

/// What a connection subscribes to and how it wants it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Which events; `None` receives nothing until [`Hub::update_filter`] gives it one
    /// (a Socket.IO socket that has not joined a room yet).
    pub filter: Option<Filter>,
    /// JSON or MessagePack.
    pub encoding: Encoding,
    /// Gzip frames over 1 KiB.
    pub gzip: bool,
    /// Gets [`Wire::Heartbeat`]s every heartbeat interval (SSE, the native WebSocket;
    /// Socket.IO has its own).
    pub heartbeat: bool,
}

/// A connection's end of its subscription; dropping it unsubscribes.
pub struct Subscription {
    /// Subscriber id.
    pub id: u64,
    /// The connection's queue; closed (with the reason) when the hub ends it.
    pub queue: Arc<Queue>,
    /// Sequence number of the newest event queued for it.
    pub last_seq: Arc<AtomicU64>,
    hub: mpsc::Sender<Command>,
}

impl Subscription {
    /// Why the hub ended it, once it did.
    pub fn closed(&self) -> Option<String> {
        self.queue.closed()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.hub.try_send(Command::Unsubscribe(self.id));
    }
}

enum Command {
    Subscribe(Box<Entry>, oneshot::Sender<()>),
    Unsubscribe(u64),
    UpdateFilter(u64, Option<Filter>, oneshot::Sender<bool>),
    Publish(Vec<Arc<Published>>),
    Replay(Box<ReplayRequest>),
    CloseAll(String, oneshot::Sender<()>),
}

/// Handle to the hub task.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Command>,
    config: Arc<PushConfig>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

/// A resumed subscriber's missed events, up to the head the log had.
struct ReplayRequest {
    id: u64,
    events: Vec<Arc<Published>>,
    upto: u64,
    done: oneshot::Sender<Vec<Arc<Payload>>>,
}

impl Hub {
    /// Starts the hub task around `dispatch`.
    pub fn start(dispatch: DispatchComponent, config: PushConfig, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let config = Arc::new(config);
        let task = HubTask {
            dispatch,
            subs: Vec::new(),
            roster: Roster::default(),
            config: config.clone(),
            metrics,
        };
        tokio::spawn(task.run(rx));
        Self {
            tx,
            config,
            next_id: Arc::default(),
        }
    }

    /// Registers a subscriber; once this returns, every later event reaches it.
    pub async fn subscribe(&self, spec: Spec) -> Option<Subscription> {
        let out = Arc::new(Queue::new(self.config.queue_capacity));
        self.register(spec, out, None).await
    }

    /// Registers a Socket.IO socket whose session's queue is `queue`, where it is
    /// namespace slot `ns`: as [`Hub::subscribe`], its messages tagged with the slot.
    /// The hub ending it ends that socket only (`closing`, then its DISCONNECT).
    pub async fn subscribe_on(
        &self,
        spec: Spec,
        queue: Arc<Queue>,
        ns: u8,
    ) -> Option<Subscription> {
        self.register(spec, queue, Some(ns)).await
    }

    async fn register(&self, spec: Spec, out: Arc<Queue>, ns: Option<u8>) -> Option<Subscription> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let last_seq = Arc::new(AtomicU64::new(0));
        let entry = Entry {
            id,
            spec,
            out: out.clone(),
            ns,
            last_seq: last_seq.clone(),
            closed: false,
            replayed_upto: 0,
            rate: roster::full_bucket(self.config.rate_per_sec, now_ms()),
            held: Vec::new(),
            degraded: false,
            last_reset: None,
        };
        let (done, registered) = oneshot::channel();
        self.tx
            .send(Command::Subscribe(Box::new(entry), done))
            .await
            .ok()?;
        registered.await.ok()?;
        Some(Subscription {
            id,
            queue: out,
            last_seq,
            hub: self.tx.clone(),
        })
    }

    /// Replaces subscriber `id`'s filter (e.g. on a room join/leave); once this returns,
    /// every later event is decided with the new one. `false` if `id` is gone. Updates
    /// already held for its next `batch_update` are still sent.
    pub async fn update_filter(&self, id: u64, filter: Option<Filter>) -> bool {
        let (done, updated) = oneshot::channel();
        if self
            .tx
            .send(Command::UpdateFilter(id, filter, done))
            .await
            .is_err()
        {
            return false;
        }
        updated.await.unwrap_or(false)
    }

    /// Ends subscriber `id` (its connection went away before dropping the
    /// [`Subscription`]); its queue closes once the hub gets to it.
    pub fn unsubscribe(&self, id: u64) {
        let _ = self.tx.try_send(Command::Unsubscribe(id));
    }

    /// Hands sequenced events to every subscriber.
    pub async fn publish(&self, events: Vec<Arc<Published>>) {
        let _ = self.tx.send(Command::Publish(events)).await;
    }

    /// Decides and encodes missed `events` for subscriber `id`, as for live ones but
    /// without the rate limit (a resuming client wants its gap filled at once). The
    /// payloads come back to the caller, which sends them before anything live; live
    /// events up to `upto` (the log's head the replay was read to) are not sent again,
    /// whether queued already or still to come.
    pub async fn replay(
        &self,
        id: u64,
        events: Vec<Arc<Published>>,
        upto: u64,
    ) -> Vec<Arc<Payload>> {
        let (done, frames) = oneshot::channel();
        let request = ReplayRequest {
            id,
            events,
            upto,
            done,
        };
        if self
            .tx
            .send(Command::Replay(Box::new(request)))
            .await
            .is_err()
        {
            return Vec::new();
        }
        frames.await.unwrap_or_default()
    }

    /// Ends every subscription with `reason` (e.g. on shutdown, so clients reconnect
    /// elsewhere); returns once every subscriber's farewell is queued, so that closing
    /// the connections next sends it rather than racing it.
    pub async fn close_all(&self, reason: &str) {
        let (done, queued) = oneshot::channel();
        if self
            .tx
            .send(Command::CloseAll(reason.to_owned(), done))
            .await
            .is_ok()
        {
            let _ = queued.await;
        }
    }

    /// Whether the hub task has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Waits until the hub task has stopped.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A message the host itself makes (markers): JSON whatever the encoding, like every
/// transport's other control messages, and no sequence number of its own.
pub fn control(kind: &str, body: &serde_json::Value) -> Arc<Payload> {
    Arc::new(Payload::control(kind, body))
}
