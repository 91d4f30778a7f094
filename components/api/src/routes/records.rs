//! Worker, queue-report and breaker records, each changed by compare-and-swap so that
//! producers reporting at once on any host all count: a writer that loses the race
//! re-reads the record and applies its events again.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use vigil_core::breaker::{Breaker, BreakerConfig};
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::queue::ReportedQueue;
use vigil_core::worker::{Worker, WorkerChange};
use vigil_core::{jobs, keys};
use vigil_store::kv::{update, KvError};
use vigil_store::registry;

use crate::store::{api_error, Kv};

/// Changes the JSON record at `key`: `change` gets the current one and returns the new
/// one with a result, or `None` to leave it.
pub fn update_json<T: Serialize + DeserializeOwned, R>(
    kv: &Kv,
    key: &str,
    mut change: impl FnMut(Option<T>) -> Option<(T, R)>,
) -> Result<Option<R>, ApiError> {
    update(kv, key, |cur| {
        let current = match cur {
            None => None,
            Some(b) => Some(serde_json::from_slice(b).map_err(|e| KvError::Corrupt {
                key: key.to_owned(),
                why: e.to_string(),
            })?),
        };
        Ok(change(current).map(|(v, r)| (serde_json::to_vec(&v).unwrap_or_default(), r)))
    })
    .map_err(api_error)
}

/// The published event of a worker change (seed 004's names).
pub fn worker_event(w: &Worker, change: WorkerChange, now_ms: u64) -> Event {
    let data = w.public();
    let mut e = Event::new(change.event_name(), event::WORKERS_TOPIC, now_ms, data);
    e.key = Some(w.id.clone());
    e.state = serde_json::to_value(w.status)
        .ok()
        .and_then(|v| v.as_str().map(String::from));
    e
}

/// Stores queue reports; a report older than the one stored does not replace it.
pub fn reports<'r>(
    kv: &Kv,
    reports: impl Iterator<Item = &'r ReportedQueue>,
) -> Result<(), ApiError> {
    let mut names = BTreeSet::new();
    for r in reports {
        update_json(kv, &keys::queue(&r.name), |cur: Option<ReportedQueue>| {
            let newer = cur.is_none_or(|c| c.reported_at <= r.reported_at);
            newer.then(|| (r.clone(), ()))
        })?;
        names.insert(r.name.as_str());
    }
    registry::ensure(kv, keys::QUEUE_NAMES, names).map_err(api_error)
}

/// Records task outcomes in their queues' breakers; the events of breakers that
/// changed state.
pub fn breakers(
    kv: &Kv,
    outcomes: &BTreeMap<String, Vec<bool>>,
    now: f64,
    now_ms: u64,
    cfg: &BreakerConfig,
) -> Result<Vec<Event>, ApiError> {
    let mut out = Vec::new();
    for (queue, results) in outcomes {
        let changed = update_json(kv, &keys::breaker(queue), |cur: Option<Breaker>| {
            let mut b = cur.unwrap_or_else(|| Breaker::new(queue.as_str()));
            let mut statuses = Vec::new();
            for ok in results {
                if b.record(*ok, now, cfg) {
                    statuses.push(b.status(now, cfg));
                }
            }
            Some((b, statuses))
        })?;
        for status in changed.unwrap_or_default() {
            out.push(Event::new(
                "circuit_breaker",
                event::BREAKERS_TOPIC,
                now_ms,
                status,
            ));
        }
    }
    Ok(out)
}

/// Stores reported system metrics, then seed 003's `queue-status` (after queue reports)
/// and `system-metrics` (after metrics) built from the records as they are now.
pub fn summaries(
    kv: &Kv,
    queues_reported: bool,
    metrics: Option<Value>,
    now_ms: u64,
) -> Result<Vec<Event>, ApiError> {
    if let Some(m) = &metrics {
        kv.put(keys::SYSTEM_METRICS, m)?;
    }
    if !queues_reported && metrics.is_none() {
        return Ok(Vec::new());
    }
    let queues = super::workers::summaries(kv)?;
    let workers = super::workers::with_status(kv)?;
    let mut out = Vec::new();
    if queues_reported {
        let statuses: Vec<_> = workers.iter().map(|(_, s)| *s).collect();
        let data = jobs::queue_status(&queues, &statuses);
        out.push(Event::new(
            jobs::QUEUE_STATUS,
            event::QUEUES_TOPIC,
            now_ms,
            data,
        ));
    }
    if metrics.is_some() {
        let data = super::metrics::system(kv, &queues, &workers)?;
        out.push(Event::new(
            jobs::SYSTEM_METRICS,
            event::METRICS_TOPIC,
            now_ms,
            data,
        ));
    }
    Ok(out)
}
