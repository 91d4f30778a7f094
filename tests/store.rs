//! State at scale, through the real host and components: concurrent producers sending
//! the same tasks' events shuffled end as if the events were applied one by one in
//! timestamp order; pagination by cursor has no gaps or duplicates while tasks arrive;
//! the dashboard snapshot is bounded.

mod common;

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// Tasks in the concurrency test.
const TASKS: usize = 300;
/// Producers sending at once.
const PRODUCERS: usize = 8;

async fn host() -> (common::TestHost, tempfile::TempDir) {
    // The workers' heartbeats are an hour old: a day of silence is allowed, so the
    // host's periodic sweep (whose first run may overlap the test) leaves them alone.
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        common::manifest_with_defaults(dir.path(), &[("worker_offline_after_secs", "86400")]);
    let root = common::manifest().parent().unwrap().canonicalize().unwrap();
    let host = common::start_with(move |c| {
        c.manifest = manifest;
        c.dispatch = root.join(&c.dispatch);
        // Many producers at once on one token: no REST rate limit in these tests.
        c.rest_rate_per_sec = 0;
    })
    .await;
    (host, dir)
}

/// A busy hour an hour ago: tasks received, started and finished on three queues and
/// four workers (one in twelve fails, few enough not to trip a breaker), workers
/// heartbeating. Distinct timestamps per task, so timestamp order is one order.
fn cluster(tasks: usize) -> Vec<Value> {
    let base = common::now_secs() as f64 - 3600.0;
    let mut out = Vec::new();
    for i in 0..tasks {
        let ts = base + i as f64 * 0.25;
        let id = format!("task-{i:04}");
        out.push(json!({"type":"task-received","uuid":id,"name":format!("job.n{}", i % 5),
            "routing_key":format!("q{}", i % 3),"owner":format!("user{}", i % 4),"args":[i],"timestamp":ts}));
        if i % 6 != 0 {
            out.push(json!({"type":"task-started","uuid":id,"hostname":format!("w{}", i % 4),"timestamp":ts + 1.0}));
        }
        if i % 6 > 1 {
            out.push(json!({"type":"task-progress","uuid":id,"progress":50,"step":"half","timestamp":ts + 1.5}));
            let end = if i % 12 == 5 {
                json!({"type":"task-failed","uuid":id,"exception":"boom","timestamp":ts + 2.0})
            } else {
                json!({"type":"task-succeeded","uuid":id,"result":i * 2,"runtime":(i % 7) as f64,"timestamp":ts + 2.0})
            };
            out.push(end);
        }
    }
    for (n, w) in (0..40).flat_map(|n| (0..4).map(move |w| (n, w))) {
        out.push(
            json!({"type":"worker-heartbeat","hostname":format!("w{w}"),"active":n % 3,
            "processed":n,"cpu":n as f64,"memory":10.0,"timestamp":base + n as f64 * 2.0}),
        );
    }
    out
}

fn ts(e: &Value) -> f64 {
    e["timestamp"].as_f64().unwrap()
}

/// Everything a client reads back, minus what depends on the wall clock.
async fn observe(host: &common::TestHost, ids: &[String]) -> Value {
    let mut tasks = Vec::new();
    for id in ids {
        tasks.push(host.get(&format!("/api/v1/tasks/{id}")).await.1);
    }
    let mut lists = json!({});
    for q in [
        "",
        "?state=SUCCESS",
        "?state=STARTED&queue=q1",
        "?owner=user2&state=FAILURE",
        "?worker=w3",
        "?name=job.n2&sort_by=-runtime",
        "?sort_by=received_at",
        "?queue=q0&state=RECEIVED",
    ] {
        let (_, l) = host
            .get(&format!(
                "/api/v1/tasks{}{}limit=1000",
                q,
                if q.is_empty() { "?" } else { "&" }
            ))
            .await;
        let ids: Vec<&str> = l["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        lists[q] = json!({ "ids": ids, "total": l["total"], "exact": l["total_exact"] });
    }
    let (_, mut workers) = host.get("/api/v1/workers").await;
    for w in workers["workers"].as_array_mut().unwrap() {
        w.as_object_mut().unwrap().remove("uptime");
    }
    let (_, dash) = host.get("/api/v1/dashboard").await;
    let (_, queues) = host.get("/api/v1/queues").await;
    let mut outcomes = Vec::new();
    for q in ["q0", "q1", "q2"] {
        let (_, b) = host
            .get(&format!("/api/v1/queue/circuit-breaker-status?queue={q}"))
            .await;
        let m = &b["data"]["metadata"];
        outcomes.push(json!([b["data"]["state"], m["failures"], m["successes"]]));
    }
    json!({ "tasks": tasks, "lists": lists, "workers": workers, "counts": dash["counts"],
            "queues": queues, "breakers": outcomes })
}

/// The ids of a listing's tasks, in its order.
fn ids_of(listing: &Value) -> Vec<String> {
    listing["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn send_all(host: &common::TestHost, batches: impl IntoIterator<Item = Vec<Value>>) {
    for b in batches {
        let (s, body) = host.ingest(&Value::Array(b).to_string()).await;
        assert_eq!(s, 202, "{body}");
    }
}

#[tokio::test]
async fn concurrent_shuffled_producers_end_as_if_applied_one_by_one() {
    let mut events = cluster(TASKS);
    let ids: Vec<String> = (0..TASKS).map(|i| format!("task-{i:04}")).collect();
    events.sort_by(|a, b| ts(a).total_cmp(&ts(b)));
    let (sequential, _d1) = host().await;
    send_all(&sequential, events.iter().map(|e| vec![e.clone()])).await;
    let expected = observe(&sequential, &ids).await;

    let (concurrent, _d2) = host().await;
    common::shuffle(&mut events, 42);
    let shares: Vec<Vec<Value>> = (0..PRODUCERS)
        .map(|p| events.iter().skip(p).step_by(PRODUCERS).cloned().collect())
        .collect();
    let base = concurrent.base.clone();
    let producers = shares.into_iter().map(|share| {
        let base = base.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for batch in share.chunks(20) {
                let resp = client
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(common::producer())
                    .body(Value::Array(batch.to_vec()).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
            }
        })
    });
    for p in producers.collect::<Vec<_>>() {
        p.await.unwrap();
    }
    let got = observe(&concurrent, &ids).await;
    for (g, e) in got["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["tasks"].as_array().unwrap())
    {
        assert_eq!(g, e, "task differs (left: concurrent, right: sequential)");
    }
    for part in ["lists", "counts", "queues", "breakers", "workers"] {
        assert_eq!(
            got[part], expected[part],
            "{part} differ (left: concurrent)"
        );
    }
    assert_eq!(
        expected["counts"]["SUCCESS"].as_u64().unwrap()
            + expected["counts"]["FAILURE"].as_u64().unwrap(),
        200
    );
}

#[tokio::test]
async fn cursor_pages_have_no_gaps_or_duplicates_while_tasks_arrive() {
    let (host, _dir) = host().await;
    let events = cluster(250);
    send_all(&host, events.chunks(100).map(<[Value]>::to_vec)).await;
    let (_, all) = host.get("/api/v1/tasks?limit=1000").await;
    let before: BTreeSet<String> = ids_of(&all).into_iter().collect();
    assert_eq!(before.len(), 250);
    let mut seen = Vec::new();
    let mut path = "/api/v1/tasks?limit=40".to_owned();
    for page in 0.. {
        let (s, l) = host.get(&path).await;
        assert_eq!(s, 200, "{l}");
        seen.extend(ids_of(&l));
        // New tasks, and changes to old ones, arrive between pages.
        let now = common::now_secs() as f64;
        host.ingest(
            &json!([{"type":"task-received","uuid":format!("new-{page}"),"timestamp":now},
            ])
            .to_string(),
        )
        .await;
        match l["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/tasks?limit=40&cursor={c}"),
            None => break,
        }
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates");
    assert_eq!(unique, before, "gaps");
    let (s, e) = host
        .get("/api/v1/tasks?sort_by=received_at&cursor=nonsense")
        .await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("cursor")));
    let (s, _) = host.get("/api/v1/tasks?offset=10001").await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn the_dashboard_snapshot_is_bounded_and_counts_everything() {
    let (host, _dir) = host().await;
    send_all(&host, cluster(260).chunks(200).map(<[Value]>::to_vec)).await;
    let (_, d) = host.get("/api/v1/dashboard").await;
    assert_eq!(d["tasks"].as_array().unwrap().len(), 100);
    let counted: u64 = d["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 260);
    let newest = d["tasks"][0]["id"].as_str().unwrap();
    let (_, first) = host.get("/api/v1/tasks?limit=1").await;
    assert_eq!(first["tasks"][0]["id"].as_str(), Some(newest));
    // A viewer's snapshot holds only its own tasks, and its own counts.
    let viewer = common::token("user1", vigil_core::auth::Role::Viewer);
    let (_, d) = host.get_as("/api/v1/dashboard", &viewer).await;
    let tasks = d["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty() && tasks.iter().all(|t| t["owner"] == "user1"));
    let counted: u64 = d["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 65);
}

/// Past ~14 000 entries an index's directory is cut into chunks (`vigil_store::dir`):
/// 20 000 tasks, ingested in batches, are all listed once each, newest first, through
/// the chunked directory of `all`, and the newest page still comes first.
#[tokio::test]
async fn an_index_past_its_directorys_first_cut_lists_every_task_in_order() {
    let (host, _dir) = host().await;
    let base = common::now_secs() as f64 - 7200.0;
    let n = 20_000;
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"type":"task-received","uuid":format!("t-{i:05}"),"name":"big.index",
                "timestamp": base + i as f64 * 0.1})
        })
        .collect();
    send_all(&host, events.chunks(1000).map(<[Value]>::to_vec)).await;
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/api/v1/tasks?limit=1000".to_owned();
    loop {
        let (s, l) = host.get(&path).await;
        assert_eq!(s, 200, "{l}");
        seen.extend(ids_of(&l));
        match l["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/tasks?limit=1000&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..n).rev().map(|i| format!("t-{i:05}")).collect();
    assert_eq!(seen.len(), want.len());
    assert!(seen == want, "not every task once, newest first");
    // A new task lands at the top of the chunked index.
    host.ingest(
        &json!({"type":"task-received","uuid":"newest","timestamp": base + 7000.0}).to_string(),
    )
    .await;
    let (_, first) = host.get("/api/v1/tasks?limit=1").await;
    assert_eq!(first["tasks"][0]["id"], "newest");
    let (_, counts) = host.get("/api/v1/tasks?limit=1&name=big.index").await;
    assert_eq!(counts["total"], n);
}
