//! The hub: every push subscriber, and the one task that asks the dispatch component
//! what each of them receives. Connections only read their bounded queue; a
//! connection that cannot keep up is closed with a reason and never slows the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::config::PushConfig;
use crate::dispatch::{self, Decision, DispatchComponent, Encoding, Filter, Frame, RateState};
use crate::metrics::Metrics;
use crate::overflow::{self, Overflow};

/// Event telling a connection it now gets latest state only (seed 001's slow consumer).
pub const DEGRADED_EVENT: &str = "degraded";
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
    CloseAll(String),
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

struct Entry {
    id: u64,
    spec: Spec,
    out: Arc<Queue>,
    last_seq: Arc<AtomicU64>,
    /// Ended by the hub (its queue closed); removed after the current pass.
    closed: bool,
    /// Live events up to here were replayed to it already (a resumed connection).
    replayed_upto: u64,
    rate: RateState,
    /// Updates over the rate, waiting for the next `batch_update`; at most one per key.
    held: Vec<Arc<Published>>,
    /// Its queue filled past [`Entry::nearly_full`]: latest state only until it drains.
    degraded: bool,
    /// The last event of the round it was last told to `reset` in.
    last_reset: Option<u64>,
}

impl Entry {
    /// Fewer than a quarter of the queue's slots are free.
    fn nearly_full(&self) -> bool {
        self.out.nearly_full()
    }

    /// Queues `msg` unless the connection's replay held it; a full queue closes the
    /// subscriber as a slow consumer.
    fn send(&mut self, msg: Arc<Payload>, metrics: &Metrics) {
        if crate::replayed(msg.seq, self.replayed_upto) {
            return;
        }
        let seq = msg.seq;
        if self
            .out
            .push(Wire::Payload {
                ns: 0,
                payload: msg,
            })
            .is_err()
        {
            close(
                self,
                "slow consumer: the connection's queue is full",
                metrics,
            );
        } else if seq != 0 {
            self.last_seq.store(seq, Ordering::Relaxed);
        }
    }
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
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let out = Arc::new(Queue::new(self.config.queue_capacity));
        let last_seq = Arc::new(AtomicU64::new(0));
        let entry = Entry {
            id,
            spec,
            out: out.clone(),
            last_seq: last_seq.clone(),
            closed: false,
            replayed_upto: 0,
            rate: RateState {
                tokens_milli: u64::from(self.config.rate_per_sec) * 1000,
                last_refill_ms: now_ms(),
            },
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

    /// Ends every subscription with `reason` (e.g. on shutdown, so clients reconnect elsewhere).
    pub async fn close_all(&self, reason: &str) {
        let _ = self.tx.send(Command::CloseAll(reason.to_owned())).await;
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

fn wit_event(p: &Published) -> dispatch::Event {
    let e = &p.event;
    dispatch::Event {
        seq: e.seq,
        kind: e.kind.clone(),
        topic: e.topic.clone(),
        key: e.key.clone(),
        owner: e.owner.clone(),
        queue: e.queue.clone(),
        state: e.state.clone(),
        json: p.json.clone(),
    }
}

/// The active subscribers as the dispatch component sees them, in `decide` order.
#[derive(Default)]
struct Roster {
    /// Index in [`HubTask::subs`] of each record.
    active: Vec<usize>,
    records: Vec<dispatch::Subscriber>,
    /// Subscribers came, went or changed filter since the records were made.
    stale: bool,
}

struct HubTask {
    dispatch: DispatchComponent,
    subs: Vec<Entry>,
    roster: Roster,
    config: Arc<PushConfig>,
    metrics: Arc<Metrics>,
}

impl HubTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut flush = tokio::time::interval(self.config.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = self.config.heartbeat;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Subscribe(entry, done)) => {
                        self.subs.push(*entry);
                        self.roster.stale = true;
                        let _ = done.send(());
                    }
                    Some(Command::Unsubscribe(id)) => {
                        // A socket's disconnect and its dropped subscription both say so.
                        if let Some(i) = self.subs.iter().position(|s| s.id == id) {
                            self.subs.remove(i);
                            self.roster.stale = true;
                        }
                    }
                    Some(Command::UpdateFilter(id, filter, done)) => {
                        let sub = self.subs.iter_mut().find(|s| s.id == id);
                        let found = sub.is_some();
                        if let Some(sub) = sub {
                            sub.spec.filter = filter;
                            self.roster.stale = true;
                        }
                        let _ = done.send(found);
                    }
                    Some(Command::Publish(events)) => self.publish(&events).await,
                    Some(Command::Replay(r)) => {
                        let ReplayRequest { id, events, upto, done } = *r;
                        let _ = done.send(self.replay(id, &events, upto).await);
                    }
                    Some(Command::CloseAll(reason)) => {
                        for sub in &mut self.subs {
                            tracing::debug!(subscriber = sub.id, "closing subscriber");
                            end(sub, &reason);
                        }
                        self.subs.clear();
                        self.roster.stale = true;
                    }
                    None => return,
                },
                _ = flush.tick() => self.flush().await,
                _ = heartbeat.tick() => self.heartbeat(),
            }
        }
    }

    /// What the component needs to know about `s`.
    fn subscriber(&self, s: &Entry, filter: Filter) -> dispatch::Subscriber {
        dispatch::Subscriber {
            filter,
            encoding: s.spec.encoding,
            gzip: s.spec.gzip,
            rate_per_sec: self.config.rate_per_sec,
            rate: s.rate,
            held_keys: s
                .held
                .iter()
                .filter_map(|p| conflation_key(&p.event))
                .collect(),
            held_count: s.held.len() as u32,
            max_held: self.config.max_held,
            degraded: s.degraded,
        }
    }

    /// One timed call of the component.
    async fn decide(
        &mut self,
        events: &[dispatch::Event],
        subscribers: &[dispatch::Subscriber],
    ) -> anyhow::Result<dispatch::Plan> {
        let started = std::time::Instant::now();
        let plan = self.dispatch.decide(now_ms(), events, subscribers).await;
        self.metrics.dispatch_call(started.elapsed());
        plan
    }

    /// A resumed subscriber's missed events as payloads; live ones up to `upto` are
    /// dropped from its queue and will not be queued.
    async fn replay(&mut self, id: u64, events: &[Arc<Published>], upto: u64) -> Vec<Arc<Payload>> {
        let Some(i) = self.subs.iter().position(|s| s.id == id) else {
            return Vec::new();
        };
        self.subs[i].replayed_upto = upto;
        let s = &self.subs[i];
        s.out.retain(
            |m| !matches!(m, Wire::Payload { payload, .. } if crate::replayed(payload.seq, upto)),
        );
        let Some(filter) = s.spec.filter.clone().filter(|_| !events.is_empty()) else {
            return Vec::new();
        };
        let mut sub = self.subscriber(s, filter);
        sub.rate_per_sec = 0;
        sub.degraded = false;
        let wit_events: Vec<dispatch::Event> = events.iter().map(|p| wit_event(p)).collect();
        let plan = match self.decide(&wit_events, &[sub]).await {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "dispatch failed during replay");
                return Vec::new();
            }
        };
        let mut frames = Frames::new(plan.frames);
        plan.deliveries
            .iter()
            .filter(|d| d.decision == Decision::Send)
            .filter_map(|d| {
                let event = events.get(d.event as usize)?;
                frames.payload(
                    d.frame as usize,
                    &event.event.kind.as_str().into(),
                    event.event.seq,
                )
            })
            .collect()
    }

    async fn publish(&mut self, events: &[Arc<Published>]) {
        self.metrics
            .events_published
            .fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.degrade_the_nearly_full();
        self.update_roster();
        if self.roster.active.is_empty() {
            return;
        }
        let wit_events: Vec<dispatch::Event> = events.iter().map(|p| wit_event(p)).collect();
        let records = std::mem::take(&mut self.roster.records);
        let decided = self.decide(&wit_events, &records).await;
        self.roster.records = records;
        let plan = match decided {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "dispatch failed; batch not pushed (clients resume from the log)");
                return;
            }
        };
        let mut frames = Frames::new(plan.frames);
        let last_seq = events.last().map_or(0, |p| p.event.seq);
        // One name per event and one count per frame, not an allocation and a metrics
        // update per delivery.
        let kinds: Vec<Arc<str>> = events
            .iter()
            .map(|p| p.event.kind.as_str().into())
            .collect();
        // Per frame: the event it encodes and how many connections got it.
        let mut sends: Vec<(usize, u64)> = vec![(0, 0); frames.len()];
        for (&i, rate) in self.roster.active.iter().zip(plan.rates) {
            self.subs[i].rate = rate;
        }
        for d in plan.deliveries {
            let (Some(&si), Some(event)) = (
                self.roster.active.get(d.subscriber as usize),
                events.get(d.event as usize),
            ) else {
                tracing::error!("dispatch planned a delivery out of range; ignored");
                continue;
            };
            let sub = &mut self.subs[si];
            match d.decision {
                Decision::Send => {
                    let kind = &kinds[d.event as usize];
                    let Some(msg) = frames.payload(d.frame as usize, kind, event.event.seq) else {
                        tracing::error!("dispatch planned a frame out of range; ignored");
                        continue;
                    };
                    sends[d.frame as usize] = (d.event as usize, sends[d.frame as usize].1 + 1);
                    sub.send(msg, &self.metrics);
                }
                Decision::Hold => {
                    Metrics::inc(&self.metrics.rate_limited);
                    sub.held.push(event.clone());
                }
                Decision::Conflate => {
                    Metrics::inc(&self.metrics.conflated);
                    let key = conflation_key(&event.event);
                    if let Some(slot) = sub
                        .held
                        .iter_mut()
                        .find(|h| key.is_some() && conflation_key(&h.event) == key)
                    {
                        *slot = event.clone();
                    }
                }
                Decision::Drop => overflowed(sub, last_seq, &self.metrics),
            }
        }
        for (len, &(event, n)) in frames.lens().zip(&sends) {
            self.metrics.sent(&kinds[event], len, n);
        }
        self.remove_closed();
    }

    /// Brings the component's view of the subscribers up to date: rebuilt when
    /// subscribers or filters changed, otherwise only the fields a publish changes.
    fn update_roster(&mut self) {
        if self.roster.stale {
            // Subscribers without a filter want nothing now: the component never sees them.
            let (active, records) = self
                .subs
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i, s, s.spec.filter.clone()?)))
                .map(|(i, s, filter)| (i, self.subscriber(s, filter)))
                .unzip();
            self.roster = Roster {
                active,
                records,
                stale: false,
            };
            return;
        }
        for (&i, record) in self.roster.active.iter().zip(&mut self.roster.records) {
            let s = &self.subs[i];
            record.rate = s.rate;
            record.degraded = s.degraded;
            if !s.held.is_empty() || record.held_count != 0 {
                record.held_keys = s
                    .held
                    .iter()
                    .filter_map(|p| conflation_key(&p.event))
                    .collect();
                record.held_count = s.held.len() as u32;
            }
        }
    }

    /// Removes the subscribers closed during the last pass.
    fn remove_closed(&mut self) {
        let before = self.subs.len();
        self.subs.retain(|s| !s.closed);
        if self.subs.len() != before {
            self.roster.stale = true;
        }
    }

    /// Switches subscribers whose queue is nearly full to latest-state-only delivery,
    /// telling them with a marker while there is still room for it.
    fn degrade_the_nearly_full(&mut self) {
        for sub in &mut self.subs {
            if sub.degraded || !sub.nearly_full() {
                continue;
            }
            sub.degraded = true;
            Metrics::inc(&self.metrics.degraded);
            tracing::info!(
                subscriber = sub.id,
                "degrading slow subscriber to latest state only"
            );
            let marker = serde_json::json!({
                "type": DEGRADED_EVENT,
                "reason": "the connection is not keeping up: sending the latest state of each item only",
            });
            sub.send(control(DEGRADED_EVENT, &marker), &self.metrics);
        }
    }

    /// Queues a heartbeat for every subscriber that wants them: one timer for all.
    fn heartbeat(&mut self) {
        for sub in self.subs.iter().filter(|s| s.spec.heartbeat) {
            let _ = sub.out.push_control(Wire::Heartbeat);
        }
    }

    /// Sends each subscriber's held updates as `batch_update`s of at most `batch_max`;
    /// a degraded subscriber only while its queue has room, and it recovers once drained.
    async fn flush(&mut self) {
        for i in 0..self.subs.len() {
            let sub = &mut self.subs[i];
            if sub.degraded && sub.out.is_empty() && sub.held.is_empty() {
                sub.degraded = false;
                let marker = serde_json::json!({ "type": RECOVERED_EVENT });
                sub.send(control(RECOVERED_EVENT, &marker), &self.metrics);
            }
            if sub.held.is_empty() || (sub.degraded && sub.nearly_full()) {
                continue;
            }
            let n = self.subs[i].held.len().min(self.config.batch_max);
            let batch: Vec<Arc<Published>> = self.subs[i].held.drain(..n).collect();
            let wit_events: Vec<dispatch::Event> = batch.iter().map(|p| wit_event(p)).collect();
            let spec = &self.subs[i].spec;
            let frame = match self
                .dispatch
                .encode_batch(&wit_events, spec.encoding, spec.gzip)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "encoding a batch failed");
                    continue;
                }
            };
            let seq = batch.last().map_or(0, |p| p.event.seq);
            let msg = Arc::new(Payload::new(
                "batch_update".into(),
                seq,
                frame.bytes.into(),
                frame.binary,
            ));
            Metrics::inc(&self.metrics.batches);
            self.metrics.sent(&msg.kind, msg.bytes.len(), 1);
            self.subs[i].send(msg, &self.metrics);
        }
        self.remove_closed();
    }
}

/// The plan's frames, each made a shared payload on its first delivery (a frame is
/// one event in one encoding: its kind and seq are that event's).
struct Frames {
    frames: Vec<(bytes::Bytes, bool)>,
    made: Vec<Option<Arc<Payload>>>,
}

impl Frames {
    fn new(frames: Vec<Frame>) -> Self {
        Self {
            made: vec![None; frames.len()],
            frames: frames
                .into_iter()
                .map(|f| (f.bytes.into(), f.binary))
                .collect(),
        }
    }

    fn len(&self) -> usize {
        self.frames.len()
    }

    /// Each frame's size in bytes.
    fn lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.frames.iter().map(|(b, _)| b.len())
    }

    /// Frame `i` as the payload of an event `kind` numbered `seq`.
    fn payload(&mut self, i: usize, kind: &Arc<str>, seq: u64) -> Option<Arc<Payload>> {
        let (bytes, binary) = self.frames.get(i)?;
        let made = self.made[i].get_or_insert_with(|| {
            Arc::new(Payload::new(kind.clone(), seq, bytes.clone(), *binary))
        });
        Some(made.clone())
    }
}

/// The dispatch component's conflation identity of an event: held updates are matched
/// by it when the component says `conflate`.
fn conflation_key(e: &vigil_core::event::Event) -> Option<String> {
    vigil_rules::conflation_key(&e.kind, e.key.as_deref())
}

/// Held updates overflowed: a reader is reset (once per round), a non-reader closed.
fn overflowed(sub: &mut Entry, last_seq: u64, metrics: &Metrics) {
    let reads = !sub.degraded && !sub.nearly_full();
    match overflow::on_overflow(reads, sub.last_reset, last_seq) {
        Overflow::Close => close(sub, "slow consumer: too many updates held", metrics),
        Overflow::AlreadyReset => {}
        Overflow::Reset => {
            sub.held.clear();
            sub.last_reset = Some(last_seq);
            Metrics::inc(&metrics.overflow_resets);
            tracing::info!(
                subscriber = sub.id,
                seq = last_seq,
                "held updates overflowed; reset"
            );
            let body = overflow::reset_body(last_seq);
            sub.send(control(overflow::RESET_EVENT, &body), metrics);
        }
    }
}

/// Marks a slow subscriber closed; it is removed after the current pass, and its
/// connection sends what was queued, then ends telling `reason`.
fn close(sub: &mut Entry, reason: &str, metrics: &Metrics) {
    if !sub.closed {
        Metrics::inc(&metrics.dropped);
        tracing::warn!(subscriber = sub.id, reason, "closing subscriber");
    }
    end(sub, reason);
}

/// Ends `sub`'s queue with `reason` (the connection drains it first).
fn end(sub: &mut Entry, reason: &str) {
    sub.closed = true;
    let _ = sub.out.push_control(Wire::End {
        ns: 0,
        code: CLOSE_SUBSCRIPTION_ENDED,
        reason: reason.into(),
    });
    sub.out.close(reason);
}

/// A message the host itself makes (markers): JSON whatever the encoding, like every
/// transport's other control messages, and no sequence number of its own.
pub fn control(kind: &str, body: &serde_json::Value) -> Arc<Payload> {
    Arc::new(Payload::control(kind, body))
}
