//! Retention: expiry by count and by age, live tasks kept, counters right, markers.

use vigil_core::task::TaskState;

use super::*;
use crate::memory::MemoryKv;
use crate::testing::{events, ingest_at, observe, recount};

/// `n` tasks received at 100 + i; those with `i % 4 != 0` finish, each in its own batch
/// at now = 1000 + i, so they are recorded finishing in order.
fn cluster(n: usize) -> MemoryKv {
    let kv = MemoryKv::new();
    for i in 0..n {
        let ts = 100.0 + i as f64;
        let mut json = format!(
            r#"[{{"type":"task-received","uuid":"t{i:03}","routing_key":"q{}","owner":"o{}","timestamp":{ts}}}"#,
            i % 2,
            i % 3
        );
        if i % 4 != 0 {
            json += &format!(
                r#",{{"type":"task-succeeded","uuid":"t{i:03}","runtime":1.0,"timestamp":{}}}"#,
                ts + 0.5
            );
        }
        json += "]";
        ingest_at(&kv, &events(&json), 1000.0 + i as f64);
    }
    kv
}

fn counters_agree(kv: &MemoryKv) {
    let mut counted = observe(kv).counters;
    counted.retain(|k, _| !k.starts_with("count/gone"));
    assert_eq!(counted, recount(kv));
}

#[test]
fn keeps_the_newest_finished_and_every_live_task() {
    let kv = cluster(100); // 75 finished, 25 live
    let policy = Policy {
        max_age_secs: None,
        max_finished: Some(50),
    };
    let r = step(&kv, &policy, 2000.0, 1000).unwrap();
    assert_eq!(r.expired.len(), 25);
    assert_eq!(r.expired[0], "t001", "oldest first");
    let o = observe(&kv);
    assert_eq!(o.indexes["all"].len(), 75);
    assert_eq!(o.indexes["s/RECEIVED"].len(), 25, "live tasks stay");
    assert_eq!(o.counters["count/done"], 50);
    assert_eq!(o.counters["count/gone"], 25);
    assert!(!o.tasks.contains_key("t001") && o.tasks.contains_key("t000"));
    let keys = kv.keys();
    assert!(
        !keys.contains(&"history/t001".to_owned()) && keys.contains(&"history/t000".to_owned())
    );
    counters_agree(&kv);
    let why = expired(&kv, "t001").unwrap().unwrap();
    assert!(why.reason.contains("newest 50"), "{}", why.reason);
    assert_eq!(step(&kv, &policy, 2000.0, 1000).unwrap().expired.len(), 0);
}

#[test]
fn expires_by_age_within_the_budget() {
    let kv = cluster(40); // finished at 1001..1039
    let policy = Policy {
        max_age_secs: Some(100.0),
        max_finished: None,
    };
    assert!(step(&kv, &policy, 1100.0, 1000).unwrap().expired.is_empty());
    // At 1120, those recorded before 1020 are too old: 15 of them (i % 4 != 0, i < 20).
    assert_eq!(
        step(&kv, &policy, 1120.0, 10).unwrap().expired.len(),
        10,
        "budget"
    );
    assert_eq!(step(&kv, &policy, 1120.0, 10).unwrap().expired.len(), 5);
    let why = expired(&kv, "t019").unwrap().unwrap();
    assert_eq!((why.done_at, why.at), (1019.0, 1120.0));
    counters_agree(&kv);
    let o = observe(&kv);
    assert_eq!(
        o.counters["count/q/q1/SUCCESS"],
        o.indexes["q/q1/SUCCESS"].len() as i64
    );
}

#[test]
fn late_events_for_an_expired_task_are_ignored() {
    let kv = cluster(8);
    step(
        &kv,
        &Policy {
            max_age_secs: Some(0.0),
            max_finished: None,
        },
        5000.0,
        100,
    )
    .unwrap();
    let late = events(r#"{"type":"task-started","uuid":"t001","timestamp":999}"#);
    assert!(ingest_at(&kv, &late, 5001.0).is_empty());
    assert!(expired(&kv, "t001").unwrap().is_some());
    assert_eq!(observe(&kv).tasks["t000"].state, TaskState::Received);
}

#[test]
fn markers_are_forgotten_after_a_while() {
    let kv = cluster(8);
    let policy = Policy {
        max_age_secs: Some(0.0),
        max_finished: None,
    };
    let r = step(&kv, &policy, 5000.0, 100).unwrap();
    assert_eq!((r.expired.len(), r.forgotten), (6, 0));
    let later = 5000.0 + MARKER_KEEP_SECS + 1.0;
    assert_eq!(step(&kv, &policy, later, 100).unwrap().forgotten, 6);
    assert_eq!(expired(&kv, "t001").unwrap(), None);
    assert_eq!(observe(&kv).counters.get("count/gone"), None);
    assert!(kv.keys().iter().all(|k| k != "task/t001"));
}

#[test]
fn retention_and_a_writer_racing_on_one_task_end_consistent() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let policy = Policy {
        max_age_secs: Some(0.0),
        max_finished: None,
    };
    // A retry arrives while retention expires the task: the retry wins, nothing expires.
    let kv = cluster(2);
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    kv.set_swap_hook(Some(Arc::new(move |kv: &MemoryKv, key: &str| {
        if key == "task/t001" && !flag.swap(true, Ordering::SeqCst) {
            let retry = events(r#"{"type":"task-retried","uuid":"t001","timestamp":900}"#);
            ingest_at(kv, &retry, 4000.0);
        }
    })));
    assert!(step(&kv, &policy, 5000.0, 10).unwrap().expired.is_empty());
    kv.set_swap_hook(None);
    assert_eq!(observe(&kv).tasks["t001"].state, TaskState::Retry);
    counters_agree(&kv);
    // Retention expires the task while an event is being applied: the event is dropped.
    let kv = cluster(2);
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    kv.set_swap_hook(Some(Arc::new(move |kv: &MemoryKv, key: &str| {
        if key == "task/t001" && !flag.swap(true, Ordering::SeqCst) {
            step(kv, &policy, 5000.0, 10).unwrap();
        }
    })));
    let late = events(r#"{"type":"task-succeeded","uuid":"t001","result":"x","timestamp":950}"#);
    assert!(ingest_at(&kv, &late, 4000.0).is_empty());
    kv.set_swap_hook(None);
    assert!(expired(&kv, "t001").unwrap().is_some());
    counters_agree(&kv);
}

#[test]
fn steps_after_each_ingest_keep_exactly_the_newest() {
    let kv = MemoryKv::new();
    let policy = Policy {
        max_age_secs: None,
        max_finished: Some(12),
    };
    for i in 0..30 {
        let ts = 100.0 + i as f64;
        let mut json = format!(r#"[{{"type":"task-received","uuid":"t{i:03}","timestamp":{ts}}}"#);
        if i % 3 != 0 {
            json += &format!(
                r#",{{"type":"task-succeeded","uuid":"t{i:03}","timestamp":{}}}"#,
                ts + 0.5
            );
        }
        json += "]";
        let now = 1000.0 + i as f64;
        let changes = ingest_at(&kv, &events(&json), now);
        if changes.iter().any(|c| c.after.state.is_terminal()) {
            step(&kv, &policy, now, 2).unwrap();
        }
    }
    let o = observe(&kv);
    let kept = &o.indexes["s/SUCCESS"];
    assert_eq!(kept.len(), 12, "{kept:?}");
    assert_eq!(kept[0], "t013", "{kept:?}");
}
