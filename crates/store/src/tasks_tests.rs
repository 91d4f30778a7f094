//! Writers racing on the same tasks end as if the events had been applied one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vigil_core::apply::apply;
use vigil_core::ingest::{parse_body, IngestEvent, TaskEvent};
use vigil_core::task::TaskState;

use super::*;
use crate::memory::{shuffle, MemoryKv};
use crate::scan::Scanner;
use crate::verify::{self, Verdict};

/// The time every test batch is applied at.
const NOW: f64 = 5000.0;

pub(crate) fn events(json: &str) -> Vec<TaskEvent> {
    parse_body(json.as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| match e {
            IngestEvent::Task(t) => t,
            other => panic!("not a task event: {other:?}"),
        })
        .collect()
}

/// Applies a batch the way the api component does.
pub(crate) fn ingest(kv: &MemoryKv, batch: &[TaskEvent]) -> Vec<Change> {
    let mut ids: Vec<String> = Vec::new();
    for e in batch {
        if !ids.contains(&e.uuid) {
            ids.push(e.uuid.clone());
        }
    }
    let mut f = |id: &str, cur: Option<Task>| {
        let mine = batch.iter().filter(|e| e.uuid == id);
        mine.fold(cur, |t, e| Some(apply(t, e, NOW))).unwrap()
    };
    let plan = prepare(kv, &ids, &mut f).unwrap();
    commit(kv, plan, NOW, &mut f).unwrap()
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
    tasks: BTreeMap<String, Task>,
    indexes: BTreeMap<String, Vec<String>>,
    counters: BTreeMap<String, i64>,
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

fn sequential(events: &[TaskEvent]) -> Observed {
    let kv = MemoryKv::new();
    let mut sorted = events.to_vec();
    sorted.sort_by(|a, b| a.timestamp.unwrap().total_cmp(&b.timestamp.unwrap()));
    for e in &sorted {
        ingest(&kv, std::slice::from_ref(e));
    }
    observe(&kv)
}

#[test]
fn a_lifecycle_moves_the_task_through_its_indexes_and_counts() {
    let kv = MemoryKv::new();
    ingest(&kv, &lifecycle(3));
    let o = observe(&kv);
    assert_eq!(o.tasks["t0002"].state, TaskState::Success);
    assert_eq!(o.indexes["all"], ["t0000", "t0001", "t0002"]);
    assert_eq!(o.indexes["s/SUCCESS"], ["t0002"]);
    assert_eq!(o.indexes["s/STARTED"], ["t0001"]);
    assert_eq!(
        o.indexes["by/runtime"],
        ["t0002"],
        "only finished tasks have one"
    );
    assert_eq!(o.counters["count/s/RECEIVED"], 1);
    assert_eq!(o.counters["count/q/q2/SUCCESS"], 1);
    assert_eq!(o.counters["count/done"], 1);
    assert_eq!(o.counters["agg/waits/q2"], 1);
    assert_eq!(o.counters["agg/wait_ms/q2"], 1500);
    assert!(
        !o.indexes["s/RECEIVED"].contains(&"t0002".to_owned()),
        "moved on"
    );
}

#[test]
fn shuffled_concurrent_producers_match_the_sequential_result() {
    let all = lifecycle(300);
    let expected = sequential(&all);
    for seed in 1..=3 {
        let kv = Arc::new(MemoryKv::new());
        let mut shuffled = all.clone();
        shuffle(&mut shuffled, seed);
        let producers: Vec<_> = shuffled
            .chunks(shuffled.len() / 4 + 1)
            .map(|part| {
                let (kv, part) = (kv.clone(), part.to_vec());
                std::thread::spawn(move || part.chunks(25).for_each(|b| drop(ingest(&kv, b))))
            })
            .collect();
        producers.into_iter().for_each(|p| p.join().unwrap());
        assert!(kv.conflicts() > 0, "seed {seed}: producers never raced");
        assert_eq!(observe(&kv), expected, "seed {seed}");
    }
}

#[test]
fn out_of_order_events_give_the_in_order_result() {
    let all = lifecycle(40);
    let kv = MemoryKv::new();
    let mut reversed = all.clone();
    reversed.reverse();
    for b in reversed.chunks(3) {
        ingest(&kv, b);
    }
    assert_eq!(observe(&kv), sequential(&all));
}

#[test]
fn a_writer_that_loses_the_race_reapplies_on_the_winner() {
    let kv = MemoryKv::new();
    ingest(
        &kv,
        &events(r#"{"type":"task-received","uuid":"a","routing_key":"q","timestamp":1}"#),
    );
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    kv.set_swap_hook(Some(Arc::new(move |kv: &MemoryKv, key: &str| {
        if key == "task/a" && !flag.swap(true, Ordering::SeqCst) {
            ingest(
                kv,
                &events(r#"{"type":"task-started","uuid":"a","hostname":"w","timestamp":2}"#),
            );
        }
    })));
    let changes = ingest(
        &kv,
        &events(r#"{"type":"task-succeeded","uuid":"a","result":"4","timestamp":3}"#),
    );
    kv.set_swap_hook(None);
    assert!(fired.load(Ordering::SeqCst));
    let after = &changes[0].after;
    assert_eq!(
        (after.state, after.worker.as_deref()),
        (TaskState::Success, Some("w"))
    );
    assert_eq!(
        changes[0].before.as_ref().map(|t| t.state),
        Some(TaskState::Started)
    );
    let o = observe(&kv);
    assert_eq!(o.indexes["s/SUCCESS"], ["a"]);
    assert_eq!(o.counters.get("count/s/STARTED"), None);
    assert_eq!(o.counters["count/w/w/SUCCESS"], 1);
}

#[test]
fn unchanged_tasks_are_not_rewritten() {
    let kv = MemoryKv::new();
    let batch = events(r#"{"type":"task-received","uuid":"a","timestamp":1}"#);
    ingest(&kv, &batch);
    kv.reset_counts();
    let again = ingest(&kv, &batch);
    assert_eq!((again[0].stored.is_none(), kv.writes()), (true, 0));
}
