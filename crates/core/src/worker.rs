//! Workers: registered by `worker-online`, kept alive by `worker-heartbeat`, gone on
//! `worker-offline` or when heartbeats stop for longer than the configured timeout.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::stamps::{At, Stamps};

/// Seconds without a heartbeat after which a worker counts as offline, unless
/// configured otherwise. Celery sends one every 2 s by default; 30 s tolerates hiccups.
pub const DEFAULT_OFFLINE_AFTER: f64 = 30.0;

/// A worker's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    /// Alive and idle.
    Online,
    /// Alive and running tasks.
    Busy,
    /// Deregistered, or silent for too long.
    Offline,
}

/// Everything Vigil knows about one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    /// Hostname, e.g. `celery@host1`.
    pub id: String,
    /// Health as of the last event (see [`Worker::status_at`] for the current one).
    pub status: WorkerStatus,
    /// When it came online (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<f64>,
    /// When it went offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<f64>,
    /// Last event time.
    pub heartbeat_at: f64,
    /// CPU use, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory use, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<f64>,
    /// Tasks running now.
    #[serde(default)]
    pub active: u64,
    /// Tasks processed since start.
    #[serde(default)]
    pub processed: u64,
    /// Tasks failed since start.
    #[serde(default)]
    pub failed: u64,
    /// Load average as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadavg: Option<Value>,
    /// Heartbeat interval the worker announced, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freq: Option<f64>,
    /// Fields Vigil does not know, kept as sent.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    /// When it last went offline, as far as known (kept, not shown).
    #[serde(rename = "_down", default, skip_serializing_if = "Option::is_none")]
    pub down_at: Option<f64>,
    /// Which event set each field (see [`crate::stamps`]; kept, not shown).
    #[serde(rename = "_at", default, skip_serializing_if = "Stamps::is_empty")]
    pub stamps: Stamps,
}

/// Which worker event (in the order that breaks a tie between two at the same time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEventKind {
    /// `worker-online`.
    Online,
    /// `worker-heartbeat`.
    Heartbeat,
    /// `worker-offline`.
    Offline,
}

/// A validated worker event.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerEvent {
    /// Which one.
    pub kind: WorkerEventKind,
    /// Worker hostname.
    pub hostname: String,
    /// Producer's timestamp, seconds.
    pub timestamp: Option<f64>,
    /// CPU percent.
    pub cpu: Option<f64>,
    /// Memory percent.
    pub memory: Option<f64>,
    /// Running tasks.
    pub active: Option<u64>,
    /// Processed count.
    pub processed: Option<u64>,
    /// Failed count.
    pub failed: Option<u64>,
    /// Load average.
    pub loadavg: Option<Value>,
    /// Heartbeat interval.
    pub freq: Option<f64>,
    /// Everything else.
    pub extra: Map<String, Value>,
}

/// What an event did to a worker, for naming the published event (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerChange {
    /// Came (back) online: `worker_registered`.
    Registered,
    /// Went offline: `worker_deregistered`.
    Deregistered,
    /// Status changed otherwise (online ⇄ busy): `worker_status_change`.
    StatusChanged,
    /// Same status, new numbers: `worker_status_update`.
    Updated,
}

impl WorkerChange {
    /// The event name clients see.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Registered => "worker_registered",
            Self::Deregistered => "worker_deregistered",
            Self::StatusChanged => "worker_status_change",
            Self::Updated => "worker_status_update",
        }
    }
}

impl Worker {
    /// The record as the APIs show it, without the bookkeeping fields.
    pub fn public(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Value::Object(m) = &mut v {
            m.remove("_at");
            m.remove("_down");
        }
        v
    }

    /// Status at `now`: a worker silent for longer than `offline_after` is offline.
    pub fn status_at(&self, now: f64, offline_after: f64) -> WorkerStatus {
        if self.status != WorkerStatus::Offline && now - self.heartbeat_at > offline_after {
            WorkerStatus::Offline
        } else {
            self.status
        }
    }

    /// Seconds since it registered, while it is up.
    pub fn uptime(&self, now: f64) -> Option<f64> {
        match self.status {
            WorkerStatus::Offline => None,
            _ => self.registered_at.map(|r| (now - r).max(0.0)),
        }
    }
}

fn status_for(kind: WorkerEventKind, active: u64) -> WorkerStatus {
    match kind {
        WorkerEventKind::Offline => WorkerStatus::Offline,
        _ if active > 0 => WorkerStatus::Busy,
        _ => WorkerStatus::Online,
    }
}

/// Applies `ev` at `now` (when it has no timestamp), so that the record ends the same
/// whatever order the events arrive in: each field takes the newest event's value
/// ([`crate::stamps`]); the status follows the newest event; an older event can still
/// tell when the current up period began.
pub fn apply(worker: Option<Worker>, ev: &WorkerEvent, now: f64) -> (Worker, WorkerChange) {
    let ts = ev.timestamp.unwrap_or(now);
    let Some(mut w) = worker else {
        let mut w = fresh(ev, ts);
        merge(&mut w, ev, ts);
        w.status = status_for(ev.kind, w.active);
        let change = match w.status {
            WorkerStatus::Offline => WorkerChange::Deregistered,
            _ => WorkerChange::Registered,
        };
        return (w, change);
    };
    merge(&mut w, ev, ts);
    if ts < w.heartbeat_at {
        older(&mut w, ev.kind, ts);
        return (w, WorkerChange::Updated);
    }
    let was_down = w.status == WorkerStatus::Offline;
    w.heartbeat_at = ts;
    let before = w.status;
    w.status = status_for(ev.kind, w.active);
    let change = match (was_down, w.status) {
        (true, WorkerStatus::Offline) => WorkerChange::Updated,
        (true, _) => {
            w.registered_at = Some(ts);
            w.deregistered_at = None;
            WorkerChange::Registered
        }
        (false, WorkerStatus::Offline) => {
            w.deregistered_at = Some(ts);
            w.down_at = Some(ts);
            WorkerChange::Deregistered
        }
        (false, s) if s != before => WorkerChange::StatusChanged,
        _ => WorkerChange::Updated,
    };
    (w, change)
}

/// An event older than the newest seen does not decide whether the worker is up; it can
/// move when the current up period began: earlier (an event of it), or later (an
/// offline before it, arriving late).
fn older(w: &mut Worker, kind: WorkerEventKind, ts: f64) {
    let after_down = w.down_at.is_none_or(|d| ts > d);
    let up = w.status != WorkerStatus::Offline;
    if up {
        // It may have filled in `active`, which busy/online follows.
        w.status = status_for(WorkerEventKind::Heartbeat, w.active);
    }
    match kind {
        WorkerEventKind::Offline if after_down => {
            w.down_at = Some(ts);
            // The up period began after it: at the earliest of its events seen so far,
            // which is no later than the newest (exact unless several of them arrived
            // before this late offline).
            if up && w.registered_at.is_some_and(|r| r < ts) {
                w.registered_at = Some(w.heartbeat_at);
            }
        }
        WorkerEventKind::Offline => {}
        _ if after_down && up => {
            w.registered_at = Some(w.registered_at.map_or(ts, |r| r.min(ts)));
        }
        _ => {}
    }
}

/// Marks a silent worker offline at `now`; `None` if it is not silent.
pub fn expire(w: &Worker, now: f64, offline_after: f64) -> Option<Worker> {
    if w.status == WorkerStatus::Offline || w.status_at(now, offline_after) != WorkerStatus::Offline
    {
        return None;
    }
    let mut gone = w.clone();
    gone.status = WorkerStatus::Offline;
    gone.deregistered_at = Some(now);
    gone.active = 0;
    Some(gone)
}

fn fresh(ev: &WorkerEvent, ts: f64) -> Worker {
    let offline = ev.kind == WorkerEventKind::Offline;
    Worker {
        id: ev.hostname.clone(),
        status: WorkerStatus::Online,
        registered_at: (!offline).then_some(ts),
        deregistered_at: offline.then_some(ts),
        heartbeat_at: ts,
        cpu: None,
        memory: None,
        active: 0,
        processed: 0,
        failed: 0,
        loadavg: None,
        freq: None,
        extra: Map::new(),
        down_at: offline.then_some(ts),
        stamps: Stamps::default(),
    }
}

/// The numbers of the worker's fields in its stamps.
mod field {
    pub const CPU: u8 = 0;
    pub const MEMORY: u8 = 1;
    pub const ACTIVE: u8 = 2;
    pub const PROCESSED: u8 = 3;
    pub const FAILED: u8 = 4;
    pub const LOADAVG: u8 = 5;
    pub const FREQ: u8 = 6;
}

/// Copies in each field the event carries, unless a newer event set it; going offline
/// carries `active: 0`.
fn merge(w: &mut Worker, ev: &WorkerEvent, ts: f64) {
    let at: At = (ts, ev.kind as u8);
    let s = &mut w.stamps;
    let newest = |s: &mut Stamps, bit, present: bool| present && s.claim(bit, at);
    if newest(s, field::CPU, ev.cpu.is_some()) {
        w.cpu = ev.cpu;
    }
    if newest(s, field::MEMORY, ev.memory.is_some()) {
        w.memory = ev.memory;
    }
    let active = if ev.kind == WorkerEventKind::Offline {
        Some(0)
    } else {
        ev.active
    };
    for (bit, value, slot) in [
        (field::ACTIVE, active, &mut w.active),
        (field::PROCESSED, ev.processed, &mut w.processed),
        (field::FAILED, ev.failed, &mut w.failed),
    ] {
        if let Some(v) = value.filter(|_| s.claim(bit, at)) {
            *slot = v;
        }
    }
    if newest(s, field::LOADAVG, ev.loadavg.is_some()) {
        w.loadavg = ev.loadavg.clone();
    }
    if newest(s, field::FREQ, ev.freq.is_some()) {
        w.freq = ev.freq;
    }
    for (k, v) in &ev.extra {
        if s.claim_extra(k, at) {
            w.extra.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: WorkerEventKind, ts: f64, active: Option<u64>) -> WorkerEvent {
        WorkerEvent {
            kind,
            hostname: "w1".into(),
            timestamp: Some(ts),
            cpu: Some(10.0),
            memory: None,
            active,
            processed: Some(3),
            failed: None,
            loadavg: None,
            freq: Some(2.0),
            extra: Map::new(),
        }
    }

    #[test]
    fn lifecycle_names_each_change() {
        use WorkerChange::*;
        use WorkerEventKind::*;
        let (w, c) = apply(None, &ev(Online, 1.0, None), 0.0);
        assert_eq!((w.status, c), (WorkerStatus::Online, Registered));
        let (w, c) = apply(Some(w), &ev(Heartbeat, 2.0, Some(2)), 0.0);
        assert_eq!(
            (w.status, c, w.active),
            (WorkerStatus::Busy, StatusChanged, 2)
        );
        let (w, c) = apply(Some(w), &ev(Heartbeat, 3.0, Some(1)), 0.0);
        assert_eq!((w.status, c), (WorkerStatus::Busy, Updated));
        let (w, c) = apply(Some(w), &ev(Offline, 4.0, None), 0.0);
        assert_eq!(
            (w.status, c, w.deregistered_at, w.active),
            (WorkerStatus::Offline, Deregistered, Some(4.0), 0)
        );
        let (w, c) = apply(Some(w), &ev(Online, 9.0, None), 0.0);
        assert_eq!(
            (w.status, c, w.registered_at),
            (WorkerStatus::Online, Registered, Some(9.0))
        );
    }

    #[test]
    fn older_events_do_not_rewind() {
        let (w, _) = apply(None, &ev(WorkerEventKind::Heartbeat, 10.0, Some(1)), 0.0);
        let (w, c) = apply(Some(w), &ev(WorkerEventKind::Offline, 5.0, None), 0.0);
        assert_eq!((w.status, c), (WorkerStatus::Busy, WorkerChange::Updated));
    }

    #[test]
    fn any_arrival_order_gives_the_timestamp_order_record() {
        use WorkerEventKind::*;
        let evs = [
            ev(Online, 1.0, None),
            WorkerEvent {
                cpu: Some(50.0),
                ..ev(Heartbeat, 2.0, Some(2))
            },
            WorkerEvent {
                cpu: None,
                ..ev(Heartbeat, 3.0, Some(1))
            },
            ev(Offline, 4.0, None),
            ev(Online, 5.0, None),
            WorkerEvent {
                cpu: None,
                ..ev(Heartbeat, 6.0, Some(3))
            },
            WorkerEvent {
                cpu: Some(70.0),
                ..ev(Heartbeat, 7.0, None)
            },
        ];
        let fold = |order: &[usize]| {
            order
                .iter()
                .fold(None, |w, i| Some(apply(w, &evs[*i], 0.0).0))
                .unwrap()
        };
        let in_order = fold(&[0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            (in_order.registered_at, in_order.cpu, in_order.active),
            (Some(5.0), Some(70.0), 3)
        );
        // Shuffled, except that no event after the offline arrives before it together
        // with a third one of its period (then `registered_at` is only approximated).
        for order in [
            [6, 5, 4, 3, 2, 1, 0],
            [3, 0, 6, 1, 5, 2, 4],
            [5, 1, 3, 6, 0, 4, 2],
        ] {
            let w = fold(&order);
            assert_eq!(
                (
                    w.status,
                    w.registered_at,
                    w.deregistered_at,
                    w.cpu,
                    w.active,
                    w.heartbeat_at
                ),
                (
                    in_order.status,
                    in_order.registered_at,
                    in_order.deregistered_at,
                    in_order.cpu,
                    in_order.active,
                    in_order.heartbeat_at
                ),
                "order {order:?}"
            );
        }
    }

    #[test]
    fn silent_workers_expire() {
        let (w, _) = apply(None, &ev(WorkerEventKind::Online, 100.0, None), 0.0);
        assert_eq!(w.status_at(120.0, 30.0), WorkerStatus::Online);
        assert_eq!(w.status_at(131.0, 30.0), WorkerStatus::Offline);
        assert!(expire(&w, 120.0, 30.0).is_none());
        let gone = expire(&w, 131.0, 30.0).unwrap();
        assert_eq!(
            (gone.status, gone.deregistered_at),
            (WorkerStatus::Offline, Some(131.0))
        );
        assert!(expire(&gone, 500.0, 30.0).is_none(), "already offline");
        assert_eq!(w.uptime(131.0), Some(31.0));
    }
}
