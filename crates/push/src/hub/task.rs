//! The hub task: one loop over commands (subscribe, unsubscribe, filter changes,
//! publish, replay, close all) and the timers; publishing and replay ask the dispatch
//! component once per batch, publishing once for every distinct subscription (the
//! roster's records) and then fanning each decision out to the connections sharing it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::frames::{conflation_key, wit_event, Frames};
use super::queue::{end, overflowed, Entry};
use super::roster::Roster;
use super::{now_ms, Command, Payload, Published, ReplayRequest, Wire};
use crate::config::PushConfig;
use crate::dispatch::{self, Decision, DispatchComponent};
use crate::metrics::Metrics;

pub(super) struct HubTask {
    pub(super) dispatch: DispatchComponent,
    pub(super) subs: Vec<Entry>,
    pub(super) roster: Roster,
    pub(super) config: Arc<PushConfig>,
    pub(super) metrics: Arc<Metrics>,
}

impl HubTask {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
                    Some(Command::CloseAll(reason, done)) => {
                        for sub in &mut self.subs {
                            tracing::debug!(subscriber = sub.id, "closing subscriber");
                            end(sub, &reason);
                        }
                        self.subs.clear();
                        self.roster.stale = true;
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = flush.tick() => self.flush().await,
                _ = heartbeat.tick() => self.heartbeat(),
            }
        }
    }

    /// One timed call of the component, deciding at `now_ms`.
    pub(super) async fn decide(
        &mut self,
        now_ms: u64,
        events: &[dispatch::Event],
        subscribers: &[dispatch::Subscriber],
    ) -> anyhow::Result<dispatch::Plan> {
        let started = std::time::Instant::now();
        let plan = self.dispatch.decide(now_ms, events, subscribers).await;
        self.metrics.dispatch_call(started.elapsed());
        plan
    }

    /// A resumed subscriber's missed events as payloads; live ones up to `upto` are
    /// dropped from its queue and will not be queued.
    pub(super) async fn replay(
        &mut self,
        id: u64,
        events: &[Arc<Published>],
        upto: u64,
    ) -> Vec<Arc<Payload>> {
        let Some(i) = self.subs.iter().position(|s| s.id == id) else {
            return Vec::new();
        };
        self.subs[i].replayed_upto = upto;
        let s = &self.subs[i];
        let ns = s.ns.unwrap_or(0);
        s.out.retain(|m| {
            !matches!(m, Wire::Payload { ns: n, payload } if *n == ns && crate::replayed(payload.seq, upto))
        });
        let Some(filter) = s.spec.filter.clone().filter(|_| !events.is_empty()) else {
            return Vec::new();
        };
        let mut sub = self.subscriber(s, filter);
        sub.rate_per_sec = 0;
        sub.degraded = false;
        let wit_events: Vec<dispatch::Event> = events.iter().map(|p| wit_event(p)).collect();
        let plan = match self.decide(now_ms(), &wit_events, &[sub]).await {
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

    /// Decides `events` once per distinct subscription and fans each decision out to
    /// every connection sharing it.
    pub(super) async fn publish(&mut self, events: &[Arc<Published>]) {
        self.metrics
            .events_published
            .fetch_add(events.len() as u64, Relaxed);
        self.degrade_the_nearly_full();
        // One clock for the roster and the component: the roster's view of the rate
        // buckets holds at this very instant.
        let now = now_ms();
        self.update_roster(now);
        if self.roster.records.is_empty() {
            return;
        }
        self.metrics
            .dispatch_records
            .fetch_add(self.roster.records.len() as u64, Relaxed);
        let wit_events: Vec<dispatch::Event> = events.iter().map(|p| wit_event(p)).collect();
        let records = std::mem::take(&mut self.roster.records);
        let decided = self.decide(now, &wit_events, &records).await;
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
        for (members, rate) in self.roster.members.iter().zip(plan.rates) {
            for &i in members {
                self.subs[i].rate = rate;
            }
        }
        // The plan lists each record's deliveries together: resolve them once, then
        // apply them to every member in event order.
        let mut actions = Vec::new();
        for run in plan
            .deliveries
            .chunk_by(|a, b| a.subscriber == b.subscriber)
        {
            let Some(members) = self.roster.members.get(run[0].subscriber as usize) else {
                tracing::error!("dispatch planned a delivery out of range; ignored");
                continue;
            };
            let n = members.len() as u64;
            actions.clear();
            for d in run {
                let Some(event) = events.get(d.event as usize) else {
                    tracing::error!("dispatch planned a delivery out of range; ignored");
                    continue;
                };
                actions.push(match d.decision {
                    Decision::Send => {
                        let kind = &kinds[d.event as usize];
                        let Some(msg) = frames.payload(d.frame as usize, kind, event.event.seq)
                        else {
                            tracing::error!("dispatch planned a frame out of range; ignored");
                            continue;
                        };
                        let sent = &mut sends[d.frame as usize];
                        *sent = (d.event as usize, sent.1 + n);
                        Action::Send(msg)
                    }
                    Decision::Hold => {
                        self.metrics.rate_limited.fetch_add(n, Relaxed);
                        Action::Hold(event)
                    }
                    Decision::Conflate => {
                        self.metrics.conflated.fetch_add(n, Relaxed);
                        Action::Conflate(event, conflation_key(&event.event))
                    }
                    Decision::Drop => Action::Drop,
                });
            }
            for &si in members {
                let sub = &mut self.subs[si];
                for action in &actions {
                    match action {
                        Action::Send(msg) => sub.send(msg.clone(), &self.metrics),
                        Action::Hold(event) => sub.held.push(Arc::clone(event)),
                        Action::Conflate(event, key) => {
                            if let Some(slot) = sub
                                .held
                                .iter_mut()
                                .find(|h| key.is_some() && conflation_key(&h.event) == *key)
                            {
                                *slot = Arc::clone(event);
                            }
                        }
                        Action::Drop => overflowed(sub, last_seq, &self.metrics),
                    }
                }
            }
        }
        for (len, &(event, n)) in frames.lens().zip(&sends) {
            self.metrics.sent(&kinds[event], len, n);
        }
        self.remove_closed();
    }
}

/// One planned delivery, resolved once for every member of a record.
enum Action<'a> {
    Send(Arc<Payload>),
    Hold(&'a Arc<Published>),
    /// The event and its conflation key.
    Conflate(&'a Arc<Published>, Option<String>),
    Drop,
}
