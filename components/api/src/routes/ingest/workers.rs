//! Worker records in a batch: `worker-*` events, the bridge's `worker-stats`, and the
//! counts task events add to the worker that sent them — all of one worker's changes in
//! one compare-and-swap, re-applied if another producer changed the record first.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use vigil_core::error::ApiError;
use vigil_core::keys;
use vigil_core::worker::{self, Worker, WorkerChange};
use vigil_store::registry;

use super::Batch;
use crate::routes::records::update_json;
use crate::store::api_error;

/// A worker after each of its events (for publishing in order), by hostname: worker
/// events, then `inspect stats` reports.
pub(super) type Snapshots = HashMap<String, WorkerSnaps>;

/// One worker's snapshots: after each worker event, after each stats report.
pub(super) type WorkerSnaps = (VecDeque<(Worker, WorkerChange)>, VecDeque<Worker>);

impl Batch<'_> {
    pub(super) fn commit_workers(
        &self,
        counts: &BTreeMap<String, Vec<(String, f64)>>,
    ) -> Result<Snapshots, ApiError> {
        let hosts: BTreeSet<&str> = self
            .worker_events
            .keys()
            .chain(self.worker_stats.keys())
            .chain(counts.keys())
            .map(String::as_str)
            .collect();
        let mut out = Snapshots::new();
        for host in &hosts {
            let snaps = update_json(self.kv, &keys::worker(host), |cur: Option<Worker>| {
                let (w, snaps) = self.apply_worker(host, cur, counts.get(*host));
                Some((w?, snaps))
            })?;
            out.insert((*host).to_owned(), snaps.unwrap_or_default());
        }
        registry::ensure(self.kv, keys::WORKER_NAMES, hosts).map_err(api_error)?;
        Ok(out)
    }

    /// One worker's changes in this batch, applied to its record.
    fn apply_worker(
        &self,
        host: &str,
        mut w: Option<Worker>,
        counts: Option<&Vec<(String, f64)>>,
    ) -> (Option<Worker>, WorkerSnaps) {
        let (mut events, mut stats) = (VecDeque::new(), VecDeque::new());
        for ev in self.worker_events.get(host).into_iter().flatten() {
            let (next, change) = worker::apply(w, ev, self.now);
            events.push_back((next.clone(), change));
            w = Some(next);
        }
        for report in self.worker_stats.get(host).into_iter().flatten() {
            let next = worker::record_stats(w, report, self.now);
            stats.push_back(next.clone());
            w = Some(next);
        }
        for (kind, ts) in counts.into_iter().flatten() {
            w = Some(worker::count_task_event(w, host, kind, *ts));
        }
        (w, (events, stats))
    }
}
