//! Helpers shared by the unit tests: ingesting batches the way the api component does,
//! a synthetic cluster's events, and everything a reader can observe of a store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vigil_core::history::{History, HistoryEntry};
use vigil_core::ingest::{parse_body, IngestEvent, TaskEvent};
use vigil_core::replay;
use vigil_core::task::Task;

use crate::kv::Kv;
use crate::memory::MemoryKv;
use crate::record::Stored;
use crate::scan::Scanner;
use crate::tasks::{commit, prepare, Change};
use crate::verify::{self, Verdict};

/// The time every test batch is applied at.
pub(crate) const NOW: f64 = 5000.0;

pub(crate) fn events(json: &str) -> Vec<TaskEvent> {
    parse_body(json.as_bytes())
        .unwrap()
        .events
        .into_iter()
        .map(|e| match e {
            IngestEvent::Task(t) => t,
            other => panic!("not a task event: {other:?}"),
        })
        .collect()
}

/// Applies a batch at [`NOW`] (see [`ingest_at`]).
pub(crate) fn ingest(kv: &MemoryKv, batch: &[TaskEvent]) -> Vec<Change> {
    ingest_at(kv, batch, NOW)
}

/// Applies a batch at `now` as the api component does: each task's history extended by
/// compare-and-swap, then its record recomputed from the history.
pub(crate) fn ingest_at(kv: &MemoryKv, batch: &[TaskEvent], now: f64) -> Vec<Change> {
    let mut ids: Vec<String> = Vec::new();
    for e in batch {
        if !ids.contains(&e.uuid) {
            ids.push(e.uuid.clone());
        }
    }
    let histories: HashMap<String, History> = ids
        .iter()
        .map(|id| (id.clone(), extend_history(kv, id, batch, now)))
        .collect();
    let mut f = |id: &str, cur: Option<&Stored>| {
        let h = &histories[id];
        let v = replay::version(h);
        if cur.is_some_and(|s| s.hist >= v) {
            return None;
        }
        replay::task(id, h, cur.and_then(|s| s.task.as_ref())).map(|t| (t, v))
    };
    let plan = prepare(kv, &ids, &mut f).unwrap();
    commit(kv, plan, now, &mut f).unwrap()
}

fn extend_history(kv: &MemoryKv, id: &str, batch: &[TaskEvent], now: f64) -> History {
    let key = vigil_core::keys::history(id);
    let mut out = History::default();
    crate::kv::update(kv, &key, |cur| {
        let mut h: History = cur
            .map(|b| serde_json::from_slice(b).unwrap())
            .unwrap_or_default();
        let mut added = false;
        for e in batch.iter().filter(|e| e.uuid == id) {
            added |= h.add(HistoryEntry::of(e, e.timestamp.unwrap_or(now), now, false));
        }
        let bytes = serde_json::to_vec(&h).unwrap();
        out = h;
        Ok(added.then_some((bytes, ())))
    })
    .unwrap();
    out
}

/// A day of a small cluster: tasks through their lifecycle on three queues.
pub(crate) fn lifecycle(tasks: usize) -> Vec<TaskEvent> {
    let mut out = Vec::new();
    for i in 0..tasks {
        let ts = 1000.0 + i as f64 * 0.37;
        let (q, o, w, n) = (i % 3, i % 2, i % 4, i % 5);
        let mut json = vec![format!(
            r#"{{"type":"task-received","uuid":"t{i:04}","name":"n{n}","routing_key":"q{q}","owner":"o{o}","timestamp":{ts}}}"#
        )];
        if i % 7 != 0 {
            json.push(format!(
                r#"{{"type":"task-started","uuid":"t{i:04}","hostname":"w{w}","timestamp":{}}}"#,
                ts + 1.5
            ));
        }
        if i % 7 > 1 {
            let kind = if i % 5 == 0 {
                "task-failed"
            } else {
                "task-succeeded"
            };
            json.push(format!(
                r#"{{"type":"{kind}","uuid":"t{i:04}","runtime":{},"timestamp":{}}}"#,
                (i % 11) as f64 / 10.0,
                ts + 3.0
            ));
        }
        out.extend(events(&format!("[{}]", json.join(","))));
    }
    out
}

/// Everything a reader can observe: records, verified index listings, counters.
#[derive(Debug, PartialEq)]
pub(crate) struct Observed {
    pub tasks: BTreeMap<String, Task>,
    pub indexes: BTreeMap<String, Vec<String>>,
    pub counters: BTreeMap<String, i64>,
}

/// What `kv` shows; stale entries are cleaned on the way, and must then be gone.
pub(crate) fn observe(kv: &MemoryKv) -> Observed {
    let keys = kv.keys();
    let mut tasks = BTreeMap::new();
    for k in keys.iter().filter(|k| k.starts_with("task/")) {
        let s = Stored::decode(k, &kv.get(k).unwrap().unwrap()).unwrap();
        if let Some(t) = s.task {
            tasks.insert(t.id.clone(), t);
        }
    }
    let names: BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("ix/"))
        .map(|k| k.split('#').next().unwrap())
        .collect();
    let mut indexes = BTreeMap::new();
    for name in names {
        let valid = verified(kv, name);
        if !valid.is_empty() {
            indexes.insert(name.to_owned(), valid);
        }
    }
    let counters = keys
        .iter()
        .filter(|k| k.starts_with("count/") || k.starts_with("agg/wait"))
        .map(|k| (k.clone(), kv.increment(k, 0).unwrap()))
        .filter(|(_, v)| *v != 0)
        .collect();
    Observed {
        tasks,
        indexes,
        counters,
    }
}

fn verified(kv: &MemoryKv, index: &str) -> Vec<String> {
    let all = Scanner::open(kv, index, false, None)
        .unwrap()
        .take(usize::MAX)
        .unwrap();
    let records = verify::records(kv, &all).unwrap();
    let mut valid = Vec::new();
    let mut stale = Vec::new();
    for (e, r) in all.iter().zip(&records) {
        match verify::verdict(index, e, r.as_ref()) {
            Verdict::Valid => valid.push(e.pos.id.clone()),
            Verdict::InFlight => panic!("{index}: {e:?} in flight with no writer running"),
            Verdict::Stale => stale.push(verify::cleanup(e, r.as_ref())),
        }
    }
    crate::index::apply(kv, index, stale).unwrap();
    let raw = Scanner::open(kv, index, false, None)
        .unwrap()
        .take(usize::MAX)
        .unwrap();
    assert_eq!(
        raw.len(),
        valid.len(),
        "{index}: stale entries survived cleaning"
    );
    valid
}

/// What the counters should hold: every live record's contributions, summed.
pub(crate) fn recount(kv: &MemoryKv) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for k in kv.keys().iter().filter(|k| k.starts_with("task/")) {
        let s = Stored::decode(k, &kv.get(k).unwrap().unwrap()).unwrap();
        if let Some(t) = &s.task {
            for (c, v) in crate::sets::contributions(t, s.done_at) {
                *out.entry(c).or_default() += v;
            }
        }
    }
    out.retain(|_, v| *v != 0);
    out
}
