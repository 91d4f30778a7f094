//! How worker events, task events and `inspect stats` reports change a worker record.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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

/// Applies `ev` at `now` (when it has no timestamp). Events older than the last one
/// seen only fill in missing fields.
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
    if ts < w.heartbeat_at {
        return (w, WorkerChange::Updated);
    }
    let was_down = w.status == WorkerStatus::Offline;
    merge(&mut w, ev, ts);
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
            WorkerChange::Deregistered
        }
        (false, s) if s != before => WorkerChange::StatusChanged,
        _ => WorkerChange::Updated,
    };
    (w, change)
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
    }
}

fn merge(w: &mut Worker, ev: &WorkerEvent, ts: f64) {
    w.cpu = ev.cpu.or(w.cpu);
    w.memory = ev.memory.or(w.memory);
    w.active = ev.active.unwrap_or(w.active);
    w.reported_processed = ev.processed.or(w.reported_processed);
    w.reported_failed = ev.failed.or(w.reported_failed);
    derive_counts(w);
    w.loadavg = ev.loadavg.clone().or(w.loadavg.take());
    w.freq = ev.freq.or(w.freq);
    w.pid = ev.pid.or(w.pid);
    for (slot, value) in [
        (&mut w.sw_ident, &ev.sw_ident),
        (&mut w.sw_ver, &ev.sw_ver),
        (&mut w.sw_sys, &ev.sw_sys),
    ] {
        if value.is_some() {
            slot.clone_from(value);
        }
    }
    if ev.kind == WorkerEventKind::Offline {
        w.active = 0;
    }
    let at = w.heartbeats.partition_point(|&h| h <= ts);
    w.heartbeats.insert(at, ts);
    if w.heartbeats.len() > MAX_HEARTBEATS {
        w.heartbeats.remove(0);
    }
    for (k, v) in &ev.extra {
        w.extra.insert(k.clone(), v.clone());
    }
}
