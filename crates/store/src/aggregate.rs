//! Per-queue figures without reading tasks: counts by state and wait sums are counters
//! the writers move (see [`crate::sets::contributions`]); throughput is a ring of
//! time buckets of finished tasks per queue.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_core::keys;
use vigil_core::queue::{QueueSummary, ReportedQueue, THROUGHPUT_WINDOW};
use vigil_core::task::{Task, TaskState};

use crate::kv::{update, Kv, KvError, Result};
use crate::sets;

/// Width of a throughput bucket, seconds: the window is measured to within one bucket.
pub const BUCKET_SECS: f64 = 10.0;
/// Buckets in a queue's ring: the 60 s window plus the bucket in progress, and one
/// spare so a late finish for the oldest bucket still lands.
pub const RING: u64 = 8;

/// One ring slot: how many tasks of the queue finished in bucket `b`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Slot {
    b: u64,
    n: u64,
}

fn bucket(ts: f64) -> u64 {
    (ts.max(0.0) / BUCKET_SECS) as u64
}

/// The queue and finish time a task counts for in throughput, once it has both.
fn finish(t: &Task) -> Option<(&str, f64)> {
    t.state.is_terminal().then_some(())?;
    Some((t.queue.as_deref()?, t.finished_at?))
}

/// Counts the tasks that just finished into their queue's ring, by `finished_at`: once,
/// when the record first has a terminal state, a queue and a finish time (in whatever
/// order its events arrived).
pub fn record_finishes<K: Kv>(kv: &K, changes: &[(Option<&Task>, &Task)]) -> Result<()> {
    let mut counts: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    for (before, after) in changes {
        if let (None, Some((q, f))) = (before.and_then(|b| finish(b)), finish(after)) {
            *counts.entry((q, bucket(f))).or_default() += 1;
        }
    }
    for ((q, b), n) in counts {
        let key = keys::throughput(q, b % RING);
        update(kv, &key, |cur| {
            let mut slot: Slot = match cur {
                None => Slot::default(),
                Some(bytes) => decode(&key, bytes)?,
            };
            if slot.b > b {
                return Ok(None); // the slot moved on: this bucket left the window
            }
            slot.n = if slot.b == b { slot.n + n } else { n };
            slot.b = b;
            Ok(Some((serde_json::to_vec(&slot).unwrap_or_default(), ())))
        })?;
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| KvError::Corrupt {
        key: key.to_owned(),
        why: e.to_string(),
    })
}

/// Tasks of `queue` finished per minute over the last [`THROUGHPUT_WINDOW`] seconds.
/// The oldest bucket counts for the part of it inside the window.
pub fn throughput<K: Kv>(kv: &K, queue: &str, now: f64) -> Result<f64> {
    let keys: Vec<String> = (0..RING).map(|s| keys::throughput(queue, s)).collect();
    let start = now - THROUGHPUT_WINDOW;
    let mut finished = 0.0;
    for (key, bytes) in keys.iter().zip(kv.get_many(&keys)?) {
        let Some(bytes) = bytes else { continue };
        let slot: Slot = decode(key, &bytes)?;
        let (lo, hi) = (
            slot.b as f64 * BUCKET_SECS,
            (slot.b + 1) as f64 * BUCKET_SECS,
        );
        if lo > now || hi <= start {
            continue;
        }
        let inside = ((hi - start) / BUCKET_SECS).clamp(0.0, 1.0);
        finished += slot.n as f64 * inside;
    }
    Ok(finished * 60.0 / THROUGHPUT_WINDOW)
}

/// One queue's summary, from its counters, its throughput ring and what a producer
/// reported (`queue-stats`), at `now`.
pub fn summary<K: Kv>(kv: &K, queue: &str, now: f64) -> Result<QueueSummary> {
    let mut keys: Vec<String> = TaskState::ALL
        .iter()
        .map(|s| keys::count(&sets::queue_state(queue, *s)))
        .collect();
    keys.push(keys::aggregate("wait_ms", queue));
    keys.push(keys::aggregate("waits", queue));
    let n = kv.counters(&keys)?;
    let of = |s: TaskState| {
        let i = TaskState::ALL.iter().position(|x| *x == s).unwrap_or(0);
        n[i].max(0) as u64
    };
    use TaskState::*;
    let states = TaskState::ALL.len();
    let (wait_ms, waits) = (n[states], n[states + 1]);
    let mut s = QueueSummary {
        name: queue.to_owned(),
        depth: of(Pending) + of(Received) + of(Retry),
        active: of(Started) + of(Progress),
        succeeded: of(Success),
        failed: of(Failure),
        avg_wait: (waits > 0).then(|| wait_ms as f64 / 1000.0 / waits as f64),
        throughput: throughput(kv, queue, now)?,
        consumers: None,
    };
    let key = keys::queue(queue);
    if let Some(bytes) = kv.get(&key)? {
        let r: ReportedQueue = decode(&key, &bytes)?;
        s.depth = r.depth.unwrap_or(s.depth);
        s.consumers = r.consumers;
    }
    Ok(s)
}

/// The tasks held that `worker` ran, by state (states with none left out).
pub fn worker_counts<K: Kv>(kv: &K, worker: &str) -> Result<BTreeMap<&'static str, u64>> {
    let keys: Vec<String> = TaskState::ALL
        .iter()
        .map(|s| keys::count(&sets::worker_state(worker, *s)))
        .collect();
    let n = kv.counters(&keys)?;
    Ok(TaskState::ALL
        .iter()
        .zip(n)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| (s.as_str(), n as u64))
        .collect())
}

/// Every registered queue's summary, by name.
pub fn summaries<K: Kv>(kv: &K, now: f64) -> Result<Vec<QueueSummary>> {
    crate::registry::names(kv, keys::QUEUE_NAMES)?
        .iter()
        .map(|q| summary(kv, q, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryKv;

    fn done(q: &str, at: f64) -> Task {
        let mut t = Task::new("x");
        t.queue = Some(q.into());
        t.state = TaskState::Success;
        t.finished_at = Some(at);
        t
    }

    #[test]
    fn throughput_counts_the_last_minute() {
        let kv = MemoryKv::new();
        let mut started = Task::new("x");
        started.queue = Some("q".into());
        let batch: Vec<Task> = [1000.0, 1031.0, 1055.0, 1059.0, 905.0]
            .into_iter()
            .map(|at| done("q", at))
            .collect();
        let changes: Vec<_> = batch.iter().map(|t| (Some(&started), t)).collect();
        record_finishes(&kv, &changes).unwrap();
        // At 1060 the window is (1000, 1060]: the 1000–1010 bucket counts whole.
        assert_eq!(throughput(&kv, "q", 1060.0).unwrap(), 4.0);
        // At 1065 half of that bucket is outside.
        assert_eq!(throughput(&kv, "q", 1065.0).unwrap(), 3.5);
        assert_eq!(throughput(&kv, "q", 2000.0).unwrap(), 0.0);
        // Already finished before: not counted again.
        record_finishes(&kv, &[(Some(&batch[0]), &batch[0])]).unwrap();
        assert_eq!(throughput(&kv, "q", 1060.0).unwrap(), 4.0);
    }

    #[test]
    fn a_queue_summary_comes_from_the_counters() {
        let kv = MemoryKv::new();
        let batch = crate::testing::events(
            r#"[{"type":"task-received","uuid":"a","routing_key":"emb","timestamp":100},
                {"type":"task-received","uuid":"b","routing_key":"emb","timestamp":100},
                {"type":"task-started","uuid":"b","timestamp":104},
                {"type":"task-received","uuid":"c","routing_key":"emb","timestamp":101},
                {"type":"task-failed","uuid":"c","timestamp":103}]"#,
        );
        crate::testing::ingest(&kv, &batch);
        let s = summary(&kv, "emb", 0.0).unwrap();
        assert_eq!(
            (s.depth, s.active, s.failed, s.avg_wait),
            (1, 1, 1, Some(4.0))
        );
        assert_eq!(summaries(&kv, 0.0).unwrap().len(), 1, "registered");
    }
}
