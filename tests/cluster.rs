//! Several hosts on one real Redis: every client on every host receives every event
//! once and in sequence order, wherever it was ingested; a cursor from one host resumes
//! on another; an outbox entry left by a component run elsewhere is sequenced once
//! however many hosts race for it.

mod common;

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use vigil_core::auth::Role;

/// Posts `n` `task-received` events (ids `<tag>-<i>`) to `host` in one batch.
async fn ingest(host: &common::TestHost, tag: &str, from: usize, n: usize) {
    let events: Vec<String> = (from..from + n)
        .map(|i| format!(r#"{{"type":"task-received","uuid":"{tag}-{i}","timestamp":{i}}}"#))
        .collect();
    let (status, body) = host.ingest(&format!("[{}]", events.join(","))).await;
    assert_eq!(status, 202, "{body}");
}

fn seq(m: &common::SseMessage) -> u64 {
    m.id.as_deref().unwrap().parse().unwrap()
}

/// The next `n` sequence numbers a WebSocket receives.
async fn ws_seqs(url: String, n: usize) -> Vec<u64> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        if let Message::Text(t) = msg.expect("in time").unwrap().unwrap() {
            let v: Value = serde_json::from_str(&t).unwrap();
            if let Some(s) = v["seq"].as_u64() {
                got.push(s);
            }
        }
    }
    got
}

#[tokio::test]
async fn every_client_on_every_host_gets_every_event_once_in_order() {
    // Every event sent as it comes, not batched by the per-connection rate limit.
    let (_redis, hosts) = common::start_cluster(3, |c| c.push.rate_per_sec = 100_000).await;
    let (tasks, per_batch) = (60, 3);
    // Each task-received is one log entry, delivered as two events sharing its sequence
    // number (`task_update`, then the `job-queued` the follower derives from it).
    let total = 2 * tasks;
    let mut sse = Vec::new();
    let mut ws = Vec::new();
    for h in &hosts {
        sse.push(common::SseClient::connect(&h.url("/events"), &common::admin()).await);
        let url = format!(
            "ws://{}/ws?access_token={}",
            h.running.addr,
            common::admin()
        );
        ws.push(tokio::spawn(ws_seqs(url, total)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the WebSockets subscribe
                                                          // Two producers at once, on two different hosts.
    let half = tasks / 2;
    let post = |h: usize, tag: &'static str| {
        let host = &hosts[h];
        async move {
            for b in (0..half).step_by(per_batch) {
                ingest(host, tag, b, per_batch).await;
            }
        }
    };
    tokio::join!(post(0, "a"), post(1, "b"));
    let expected: Vec<u64> = (1..=tasks as u64).flat_map(|s| [s, s]).collect();
    for (i, client) in sse.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < total {
            got.push(seq(&client.next().await));
        }
        assert_eq!(got, expected, "SSE on host {i}");
    }
    for (i, w) in ws.into_iter().enumerate() {
        assert_eq!(w.await.unwrap(), expected, "WebSocket on host {i}");
    }
    // The long-poll feed on the third host, where nothing was ingested, has them too.
    let (_, feed) = hosts[2]
        .get("/api/v1/events?since=0&timeout=0&limit=5000")
        .await;
    let feed_seqs: Vec<u64> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(feed_seqs, expected);
}

#[tokio::test]
async fn a_cursor_from_one_host_resumes_on_another() {
    let (_redis, hosts) = common::start_cluster(3, |c| c.history = 20).await;
    // Task updates only: one event per log entry.
    let url = |h: usize| hosts[h].url("/events?topics=celery:tasks");
    let mut on_a = common::SseClient::connect(&url(0), &common::admin()).await;
    ingest(&hosts[0], "r", 0, 2).await;
    let first: Vec<u64> = vec![seq(&on_a.next().await), seq(&on_a.next().await)];
    assert_eq!(first, [1, 2]);
    drop(on_a); // host A's connection dies
    ingest(&hosts[1], "r", 2, 3).await; // missed while away, ingested on B
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = reqwest::Client::new()
        .get(url(2))
        .bearer_auth(common::admin())
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    let mut on_c = common::SseClient::from_response(resp).await;
    ingest(&hosts[0], "r", 5, 1).await; // live, ingested on A
    let mut resumed = Vec::new();
    while resumed.len() < 4 {
        resumed.push(seq(&on_c.next().await));
    }
    assert_eq!(
        resumed,
        (3..=6).collect::<Vec<_>>(),
        "missed ones, then live"
    );

    // Further behind than the shared history (20 events): reset, on any host.
    ingest(&hosts[1], "r", 6, 20).await;
    while hosts[2].get("/api/v1/events?since=25&timeout=0").await.1["seq"] != 26 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = reqwest::Client::new()
        .get(hosts[1].url("/events?topics=celery:tasks&since=2"))
        .bearer_auth(common::admin())
        .send()
        .await
        .unwrap();
    let mut behind = common::SseClient::from_response(resp).await;
    let m = behind.next().await;
    assert_eq!(m.event, "reset");
    assert_eq!(serde_json::from_str::<Value>(&m.data).unwrap()["seq"], 26);
}

#[tokio::test]
async fn the_api_reads_the_same_records_on_every_host() {
    let (redis, hosts) = common::start_cluster(2, |_| {}).await;
    ingest(&hosts[0], "same", 0, 1).await;
    let (status, task) = hosts[1].get("/api/v1/tasks/same-0").await;
    assert_eq!((status, task["state"].as_str()), (200, Some("RECEIVED")));
    // Stored the way Spin's Redis store keeps it: the key itself, the JSON the
    // component wrote, no prefix; and no outbox key left behind (the host took the
    // write over and appended it to the log).
    let raw = redis.command("GET task/same-0");
    assert!(raw.contains(r#""id":"same-0""#), "{raw}");
    assert_eq!(redis.command("KEYS outbox/*"), "*0\r\n");
    assert_eq!(redis.command("GET meta/seq"), "$1\r\n1\r\n");
}

#[tokio::test]
async fn the_official_socketio_client_on_two_hosts_gets_every_event_once() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/socketio");
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "run `npm ci` in tests/socketio first (scripts/test does)"
    );
    let (_redis, hosts) = common::start_cluster(2, |c| c.push.rate_per_sec = 100_000).await;
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .args(["--test", "--test-reporter=spec", "cluster/spread.test.js"])
        .env("VIGIL_URL", &hosts[0].base)
        .env("VIGIL_URL_B", &hosts[1].base)
        .env("VIGIL_ADMIN_TOKEN", common::admin())
        .env("VIGIL_VIEWER_TOKEN", common::token("alice", Role::Viewer))
        .env("VIGIL_PRODUCER_TOKEN", common::producer())
        .env("VIGIL_JWT_SECRET", common::SECRET)
        .env(
            "VIGIL_EXPIRED_TOKEN",
            common::token_with("root", Role::Admin, -60, common::SECRET),
        )
        .output()
        .await
        .expect("node on PATH");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed: {}", out.status);
}
