//! Concurrent writers are safe: the same tasks' and workers' events, shuffled and sent
//! at once by many producers (across three hosts on Redis, or to one host on SQLite),
//! end in the records one host makes from them applied one by one in timestamp order
//! (the README's out-of-order rule).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use vigil::config::ServeConfig;

const TASKS: usize = 12;
const PRODUCERS: usize = 8;

/// Every task's lifecycle (with progress reports if `progress`) and two workers'
/// heartbeats, in timestamp order.
fn events(progress: bool) -> Vec<Value> {
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 20.0;
    let mut out = Vec::new();
    for i in 0..TASKS {
        let (id, ts) = (format!("c{i}"), t0 + i as f64 * 0.01);
        out.push(json!({"type":"task-received","uuid":id,"name":"etl.load","routing_key":format!("q{}", i % 3),"owner":"alice","args":[i],"timestamp":ts}));
        out.push(json!({"type":"task-started","uuid":id,"hostname":format!("w{}", i % 2),"timestamp":ts + 1.0}));
        for (k, p) in [25, 50, 75].iter().enumerate().filter(|_| progress) {
            out.push(json!({"type":"task-progress","uuid":id,"progress":p,"step":format!("step {k}"),"totalBatches":4,"completedBatches":k + 1,"timestamp":ts + 2.0 + k as f64}));
        }
        out.push(if i % 5 == 4 {
            json!({"type":"task-failed","uuid":id,"exception":"boom","timestamp":ts + 6.0})
        } else {
            json!({"type":"task-succeeded","uuid":id,"result":{"rows":i},"runtime":5.5,"timestamp":ts + 6.0})
        });
    }
    for k in 0..6 {
        for w in 0..2 {
            out.push(json!({"type":"worker-heartbeat","hostname":format!("w{w}"),"active":k,"processed":k * 3,"loadavg":[k, 0, 0],"timestamp":t0 + k as f64}));
        }
    }
    out.sort_by(|a, b| {
        a["timestamp"]
            .as_f64()
            .partial_cmp(&b["timestamp"].as_f64())
            .unwrap()
    });
    out
}

/// The events in a fixed shuffled order (the common deterministic shuffle), so a
/// failure can be replayed.
fn shuffled(mut v: Vec<Value>) -> Vec<Value> {
    common::shuffle(&mut v, 0x9e37_79b9_7f4a_7c15);
    v
}

/// The records the events made, as the API shows them.
async fn records(host: &common::TestHost) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for i in 0..TASKS {
        let (status, t) = host.get(&format!("/api/v1/tasks/c{i}")).await;
        assert_eq!(status, 200, "{t}");
        out.insert(format!("task c{i}"), t);
    }
    for w in 0..2 {
        let (_, mut worker) = host.get(&format!("/api/v1/workers/w{w}")).await;
        // Derived from the reader's clock, not from the events.
        for field in ["heartbeat_age", "uptime"] {
            worker.as_object_mut().unwrap().remove(field);
        }
        out.insert(format!("worker w{w}"), worker);
    }
    let (_, queues) = host.get("/api/v1/queues").await;
    out.insert("queues".into(), queues);
    out
}

/// One event per request, producer `p` taking every `PRODUCERS`th event and the hosts
/// in turn, all producers at once.
async fn send_concurrently(hosts: &[common::TestHost], events: &[Value]) {
    let producers = (0..PRODUCERS).map(|p| async move {
        for (n, e) in events.iter().enumerate().skip(p).step_by(PRODUCERS) {
            let host = &hosts[n % hosts.len()];
            let (status, body) = host.ingest(&e.to_string()).await;
            assert_eq!(status, 202, "{body}");
        }
    });
    futures::future::join_all(producers).await;
}

/// The hosts' settings: no REST rate limit (many producers on one token), and a day of
/// worker silence allowed. Whether a worker is offline is derived from the reader's
/// clock (and the host's periodic sweep), not from the events: the last heartbeats are
/// 15 s old when sent, and a loaded machine may take longer than the default 30 s to
/// read both results.
fn settings(manifest_dir: &Path) -> impl Fn(&mut ServeConfig) {
    let manifest =
        common::manifest_with_defaults(manifest_dir, &[("worker_offline_after_secs", "86400")]);
    let root = common::manifest().parent().unwrap().canonicalize().unwrap();
    move |c| {
        c.manifest = manifest.clone();
        c.dispatch = root.join(&c.dispatch);
        c.rest_rate_per_sec = 0;
    }
}

async fn sequential_reference(events: &[Value]) -> BTreeMap<String, Value> {
    let (dir, manifest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = common::start_on(
        dir.path(),
        common::TestStore::default(),
        settings(manifest.path()),
    )
    .await;
    for e in events {
        assert_eq!(host.ingest(&e.to_string()).await.0, 202);
    }
    records(&host).await
}

fn assert_same(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) {
    for (k, v) in want {
        assert_eq!(
            got.get(k),
            Some(v),
            "{k} differs from the sequential result"
        );
    }
}

// Records are swapped (compare-and-swap through wasi:keyvalue) and a task is recomputed
// from its history when its events arrive out of time order, so whatever the arrival
// order and however many producers, every record ends as in the sequential run.

async fn across_three_redis_hosts(progress: bool) {
    let events = events(progress);
    let want = sequential_reference(&events).await;
    let manifest = tempfile::tempdir().unwrap();
    let (_redis, hosts) = common::start_cluster(3, settings(manifest.path())).await;
    send_concurrently(&hosts, &shuffled(events)).await;
    assert_same(&records(&hosts[1]).await, &want);
}

async fn on_one_sqlite_host(progress: bool) {
    let events = events(progress);
    let want = sequential_reference(&events).await;
    let (dir, manifest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = common::start_on(
        dir.path(),
        common::TestStore::default(),
        settings(manifest.path()),
    )
    .await;
    send_concurrently(std::slice::from_ref(&host), &shuffled(events)).await;
    assert_same(&records(&host).await, &want);
}

#[tokio::test]
async fn shuffled_lifecycles_across_three_redis_hosts_match_the_sequential_result() {
    across_three_redis_hosts(false).await;
}

#[tokio::test]
async fn shuffled_lifecycles_on_one_sqlite_host_match_the_sequential_result() {
    on_one_sqlite_host(false).await;
}

#[tokio::test]
async fn shuffled_progress_across_three_redis_hosts_matches_the_sequential_result() {
    across_three_redis_hosts(true).await;
}

#[tokio::test]
async fn shuffled_progress_on_one_sqlite_host_matches_the_sequential_result() {
    on_one_sqlite_host(true).await;
}
