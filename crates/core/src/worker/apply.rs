//! How worker events, task events and `inspect stats` reports change a worker record.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::stamps::{At, Stamps};

use super::{
    Worker, WorkerChange, WorkerEvent, WorkerEventKind, WorkerStats, WorkerStatus, MAX_HEARTBEATS,
};

/// Distinct task event types counted per worker; custom types past this are counted
/// under `other`, so a producer inventing types cannot grow the record without bound.
pub const MAX_COUNTED_TYPES: usize = 32;

fn status_for(kind: WorkerEventKind, active: u64) -> WorkerStatus {
    match kind {
        WorkerEventKind::Offline => WorkerStatus::Offline,
        _ if active > 0 => WorkerStatus::Busy,
        _ => WorkerStatus::Online,
    }
}

/// Applies `ev` at `now` (when it has no timestamp), so that the record ends the same
/// whatever order the events arrive in: each field takes the newest event's value
/// ([`crate::stamps`]); the status follows the newest event; an older event still adds
/// its heartbeat, fills in what no newer event said, and can tell when the current up
/// period began.
pub fn apply(worker: Option<Worker>, ev: &WorkerEvent, now: f64) -> (Worker, WorkerChange) {
    let ts = ev.timestamp.unwrap_or(now);
    let Some(mut w) = worker else {
        let mut w = fresh(&ev.hostname, ts, ev.kind != WorkerEventKind::Offline);
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
/// offline before it, arriving late: then the earliest event of the period seen so far,
/// at most the newest — exact unless several arrived before that offline).
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

/// Counts a task event (`kind`, at `ts`) sent by the worker, creating the worker if
/// Vigil has not heard of it (Celery's `State` does the same). Like Celery's `State`, a
/// task event shows the worker is alive: it moves `heartbeat_at` on, unless the worker
/// went offline. Its `processed`/`failed` follow the counts unless reported.
pub fn count_task_event(worker: Option<Worker>, hostname: &str, kind: &str, ts: f64) -> Worker {
    let mut w = worker.unwrap_or_else(|| fresh(hostname, ts, true));
    let key = if w.task_counts.contains_key(kind) || w.task_counts.len() < MAX_COUNTED_TYPES {
        kind
    } else {
        "other"
    };
    *w.task_counts.entry(key.to_owned()).or_default() += 1;
    if w.status != WorkerStatus::Offline {
        w.heartbeat_at = w.heartbeat_at.max(ts);
    }
    derive_counts(&mut w);
    w
}

/// Records what `inspect stats` said about the worker (creating it if unknown: it
/// answered, so it is up).
pub fn record_stats(worker: Option<Worker>, report: &WorkerStats, now: f64) -> Worker {
    let ts = report.timestamp.unwrap_or(now);
    let mut w = worker.unwrap_or_else(|| fresh(&report.hostname, ts, true));
    w.stats = Some(Value::Object(report.stats.clone()));
    if report.queues.is_some() {
        w.queues.clone_from(&report.queues);
    }
    w.stats_at = Some(ts);
    w
}

fn derive_counts(w: &mut Worker) {
    let count = |k: &str| w.task_counts.get(k).copied().unwrap_or(0);
    w.processed = w.reported_processed.unwrap_or(count("task-started"));
    w.failed = w.reported_failed.unwrap_or(count("task-failed"));
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

fn fresh(hostname: &str, ts: f64, online: bool) -> Worker {
    Worker {
        id: hostname.to_owned(),
        status: WorkerStatus::Online,
        registered_at: online.then_some(ts),
        deregistered_at: (!online).then_some(ts),
        heartbeat_at: ts,
        cpu: None,
        memory: None,
        active: 0,
        processed: 0,
        failed: 0,
        loadavg: None,
        freq: None,
        pid: None,
        sw_ident: None,
        sw_ver: None,
        sw_sys: None,
        heartbeats: Vec::new(),
        task_counts: BTreeMap::new(),
        reported_processed: None,
        reported_failed: None,
        stats: None,
        queues: None,
        stats_at: None,
        extra: Map::new(),
        down_at: (!online).then_some(ts),
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
    pub const PID: u8 = 7;
    pub const SW_IDENT: u8 = 8;
    pub const SW_VER: u8 = 9;
    pub const SW_SYS: u8 = 10;
}

/// Copies in each field the event carries unless a newer event set it (going offline
/// carries `active: 0`), and adds its heartbeat time.
fn merge(w: &mut Worker, ev: &WorkerEvent, ts: f64) {
    let at: At = (ts, ev.kind as u8);
    let s = &mut w.stamps;
    newest(&mut w.cpu, &ev.cpu, s, field::CPU, at);
    newest(&mut w.memory, &ev.memory, s, field::MEMORY, at);
    let active = match ev.kind {
        WorkerEventKind::Offline => Some(0),
        _ => ev.active,
    };
    if let Some(a) = active.filter(|_| s.claim(field::ACTIVE, at)) {
        w.active = a;
    }
    newest(
        &mut w.reported_processed,
        &ev.processed,
        s,
        field::PROCESSED,
        at,
    );
    newest(&mut w.reported_failed, &ev.failed, s, field::FAILED, at);
    newest(&mut w.loadavg, &ev.loadavg, s, field::LOADAVG, at);
    newest(&mut w.freq, &ev.freq, s, field::FREQ, at);
    newest(&mut w.pid, &ev.pid, s, field::PID, at);
    newest(&mut w.sw_ident, &ev.sw_ident, s, field::SW_IDENT, at);
    newest(&mut w.sw_ver, &ev.sw_ver, s, field::SW_VER, at);
    newest(&mut w.sw_sys, &ev.sw_sys, s, field::SW_SYS, at);
    for (k, v) in &ev.extra {
        if s.claim_extra(k, at) {
            w.extra.insert(k.clone(), v.clone());
        }
    }
    derive_counts(w);
    let i = w.heartbeats.partition_point(|&h| h <= ts);
    w.heartbeats.insert(i, ts);
    if w.heartbeats.len() > MAX_HEARTBEATS {
        w.heartbeats.remove(0);
    }
}

fn newest<T: Clone>(slot: &mut Option<T>, value: &Option<T>, stamps: &mut Stamps, bit: u8, at: At) {
    if let Some(v) = value {
        if stamps.claim(bit, at) {
            *slot = Some(v.clone());
        }
    }
}
