//! Writers racing on the same tasks end as if the events had been applied one by one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vigil_core::ingest::TaskEvent;
use vigil_core::task::TaskState;

use crate::memory::{shuffle, MemoryKv};
use crate::testing::{events, ingest, lifecycle, observe, Observed};

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
fn a_batch_reads_the_directories_of_the_indexes_it_touches_at_once() {
    let kv = MemoryKv::new();
    let all = lifecycle(2);
    ingest(&kv, &all[..1]);
    kv.reset_counts();
    // A new task (seven indexes), and a task that moves on (entries added and removed).
    ingest(&kv, &all[1..]);
    let dirs: Vec<String> = kv
        .single_gets()
        .into_iter()
        .filter(|k| k.starts_with("ix/") && !k.contains('#'))
        .collect();
    assert!(dirs.is_empty(), "read one by one: {dirs:?}");
    assert_eq!(observe(&kv).indexes["all"], ["t0000", "t0001"]);
}

#[test]
fn shuffled_concurrent_producers_match_the_sequential_result() {
    let all = lifecycle(300);
    let expected = sequential(&all);
    for seed in 1..=3 {
        let kv = Arc::new(MemoryKv::new().jitter());
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
    // The other writer's record came from the longer history (all three events):
    // ours, computed from two, does not replace it.
    assert!(changes[0].stored.is_none());
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
