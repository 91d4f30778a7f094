//! Workers: registered by `worker-online`, kept alive by `worker-heartbeat`, gone on
//! `worker-offline` or when heartbeats stop for longer than the configured timeout.

mod apply;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::stamps::Stamps;

pub use apply::{apply, count_task_event, expire, record_stats, MAX_COUNTED_TYPES};

/// Heartbeat times kept per worker, for its detail view (Celery's `State` keeps 4).
pub const MAX_HEARTBEATS: usize = 10;

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
    /// Process id of the worker's main process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
    /// Software: Celery's `sw_ident` (e.g. `py-celery`), `sw_ver`, `sw_sys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_ident: Option<String>,
    /// See `sw_ident`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_ver: Option<String>,
    /// See `sw_ident`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_sys: Option<String>,
    /// Times of the last [`MAX_HEARTBEATS`] worker events, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heartbeats: Vec<f64>,
    /// Task events seen from this worker, by type (as Flower counts them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_counts: BTreeMap<String, u64>,
    /// `processed` as the worker's heartbeats report it; `processed` shows this when
    /// known, else the `task-started` events seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_processed: Option<u64>,
    /// `failed` as a producer reported it; `failed` shows this when known, else the
    /// `task-failed` events seen (Celery's heartbeats carry no failed count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_failed: Option<u64>,
    /// What Celery's `inspect stats` last said (pool, prefetch, rusage, broker, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
    /// Queues it consumes from (`inspect active_queues`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Value>,
    /// When `stats` was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_at: Option<f64>,
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
    /// Main process id.
    pub pid: Option<u64>,
    /// Software identity.
    pub sw_ident: Option<String>,
    /// Software version.
    pub sw_ver: Option<String>,
    /// Operating system.
    pub sw_sys: Option<String>,
    /// Everything else.
    pub extra: Map<String, Value>,
}

/// A validated `worker-stats` report (the bridge's `inspect stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStats {
    /// Worker hostname.
    pub hostname: String,
    /// When reported, seconds.
    pub timestamp: Option<f64>,
    /// `inspect stats` for this worker, as Celery answered.
    pub stats: Map<String, Value>,
    /// `inspect active_queues` for this worker.
    pub queues: Option<Value>,
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

#[cfg(test)]
mod tests;
