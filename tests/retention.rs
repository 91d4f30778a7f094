//! Retention through the real host: finished tasks beyond the configured count, or
//! older than the configured age, expire oldest first; live ones stay; counts and
//! queue aggregates follow; an expired task answers 404 saying so.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

/// Long enough that the host's own retention calls stay out of a test's way.
const NEVER: Duration = Duration::from_secs(3600);

/// Starts a host whose manifest keeps `max` finished tasks for `secs` seconds, and
/// whose periodic calls (worker sweep, retention) come every `every`.
async fn host(max: &str, secs: &str, every: Duration) -> (common::TestHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = common::manifest_with_defaults(
        dir.path(),
        &[("task_retention_max", max), ("task_retention_secs", secs)],
    );
    let root = common::manifest().parent().unwrap().canonicalize().unwrap();
    let host = common::start_with(move |c| {
        c.manifest = manifest;
        c.dispatch = root.join(&c.dispatch);
        c.rest_rate_per_sec = 0;
        c.sweep_interval = every;
    })
    .await;
    (host, dir)
}

/// `n` tasks on two queues; every third stays live (received), the rest finish.
async fn fill(host: &common::TestHost, n: usize) {
    let now = common::now_secs() as f64;
    for i in 0..n {
        let id = format!("t{i:03}");
        let mut batch = vec![
            json!({"type":"task-received","uuid":id,"routing_key":format!("q{}", i % 2),
            "owner":"alice","timestamp":now + i as f64}),
        ];
        if i % 3 != 0 {
            batch.push(json!({"type":"task-started","uuid":id,"hostname":"w","timestamp":now + i as f64 + 0.5}));
            batch.push(json!({"type":"task-succeeded","uuid":id,"timestamp":now + i as f64 + 0.7}));
        }
        let (s, body) = host.ingest(&Value::Array(batch).to_string()).await;
        assert_eq!(s, 202, "{body}");
    }
}

fn queue<'a>(qs: &'a Value, name: &str) -> &'a Value {
    qs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .unwrap()
}

#[tokio::test]
async fn finished_tasks_beyond_the_count_expire_oldest_first() {
    let (host, _dir) = host("12", "0", NEVER).await;
    fill(&host, 30).await; // 20 finished, 10 live
    let (_, all) = host.get("/api/v1/tasks?limit=1000").await;
    assert_eq!(
        (all["total"].as_u64(), all["total_exact"].as_bool()),
        (Some(22), Some(true))
    );
    let (_, done) = host.get("/api/v1/tasks?state=SUCCESS&limit=1000").await;
    let kept: Vec<&str> = done["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 12, "{kept:?}");
    assert_eq!(
        kept.last(),
        Some(&"t013"),
        "the oldest 8 finished (t001…t011) went"
    );
    let (_, live) = host.get("/api/v1/tasks?state=RECEIVED&limit=1000").await;
    assert_eq!(live["total"].as_u64(), Some(10), "live tasks never expire");
    let (_, qs) = host.get("/api/v1/queues").await;
    let succeeded: u64 = ["q0", "q1"]
        .iter()
        .map(|q| queue(&qs, q)["succeeded"].as_u64().unwrap())
        .sum();
    let depth: u64 = ["q0", "q1"]
        .iter()
        .map(|q| queue(&qs, q)["depth"].as_u64().unwrap())
        .sum();
    assert_eq!((succeeded, depth), (12, 10));
    let (_, d) = host.get("/api/v1/dashboard").await;
    assert_eq!(
        (
            d["counts"]["SUCCESS"].as_u64(),
            d["counts"]["RECEIVED"].as_u64()
        ),
        (Some(12), Some(10))
    );
    let (s, e) = host.get("/api/v1/tasks/t001").await;
    let msg = e["error"]["message"].as_str().unwrap();
    assert_eq!(s, 404);
    assert!(
        msg.contains("expired") && msg.contains("newest 12"),
        "{msg}"
    );
    let (s, e) = host.get("/api/v1/tasks/never-seen").await;
    assert_eq!(s, 404);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("kept"),
        "{e}"
    );
    // A viewer who could not see the task learns nothing more than "unknown".
    let bob = common::token("bob", vigil_core::auth::Role::Viewer);
    let (_, e) = host.get_as("/api/v1/tasks/t001", &bob).await;
    assert!(!e["error"]["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn finished_tasks_expire_by_age_and_late_events_do_not_revive_them() {
    let (host, _dir) = host("0", "1", NEVER).await;
    fill(&host, 9).await; // 6 finished, 3 live
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let admin = common::admin();
    let (s, r) = host.post("/api/v1/tasks/expire", &admin, "").await;
    assert_eq!((s, r["expired"].as_u64()), (200, Some(6)), "{r}");
    let (_, all) = host.get("/api/v1/tasks?limit=100").await;
    assert_eq!(all["total"].as_u64(), Some(3));
    let late = json!({"type":"task-retried","uuid":"t001","timestamp":common::now_secs()});
    assert_eq!(host.ingest(&late.to_string()).await.0, 202);
    let (s, e) = host.get("/api/v1/tasks/t001").await;
    assert_eq!(s, 404);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("kept 1 s"),
        "{e}"
    );
    let viewer = common::token("v", vigil_core::auth::Role::Viewer);
    assert_eq!(host.post("/api/v1/tasks/expire", &viewer, "").await.0, 403);
}

#[tokio::test]
async fn the_host_runs_retention_without_any_ingest() {
    let (host, _dir) = host("0", "1", Duration::from_millis(300)).await;
    fill(&host, 6).await; // 4 finished, 2 live
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, all) = host.get("/api/v1/tasks?limit=100").await;
        if all["total"].as_u64() == Some(2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not expired: {all}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
