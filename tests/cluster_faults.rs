//! Faults of a deployment on Redis: a host killed with SIGKILL while producers post
//! and clients listen (its clients resume on another host: no gap, no duplicate, no
//! acknowledged event lost), and Redis restarted (hosts keep their connections, ingest
//! answers a clean 503 meanwhile, `/ready` says so, and everything carries on after).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

/// An SSE client that follows the log across hosts: it starts on `hosts[first]` and,
/// whenever its stream ends, resumes on the next host with the last `seq` it got. It
/// returns every sequence number received, once `head` says it has them all.
async fn roaming_client(hosts: Vec<String>, first: usize, head: watch::Receiver<u64>) -> Vec<u64> {
    let mut seqs: Vec<u64> = Vec::new();
    let mut at = first;
    loop {
        let since = seqs.last().copied().unwrap_or(0);
        if *head.borrow() > 0 && since >= *head.borrow() {
            return seqs;
        }
        // Task updates only: one event per log entry (each also brings a `job-*`).
        let url = format!("{}/events?topics=celery:tasks&since={since}", hosts[at]);
        let resp = reqwest::Client::new()
            .get(url)
            .bearer_auth(common::admin())
            .send()
            .await;
        if let Ok(resp) = resp.and_then(|r| r.error_for_status()) {
            read_stream(resp, &mut seqs, &head).await;
        }
        at = (at + 1) % hosts.len();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Appends each logged event's `seq` until the stream ends or `head` is reached.
async fn read_stream(resp: reqwest::Response, seqs: &mut Vec<u64>, head: &watch::Receiver<u64>) {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    loop {
        let target = *head.borrow();
        if target > 0 && seqs.last().copied().unwrap_or(0) >= target {
            return;
        }
        let chunk = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
        match chunk {
            Err(_) => continue, // nothing for now; look at the target again
            Ok(Some(Ok(bytes))) => buf.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(_) => return, // the host went away
        }
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event: "));
            assert_ne!(
                event,
                Some("reset"),
                "a resume within the history never resets"
            );
            let is_logged = !matches!(
                event,
                Some("connected" | "initial_data" | "dashboard_update" | "resources_update") | None
            );
            if let (true, Some(id)) = (
                is_logged,
                block.lines().find_map(|l| l.strip_prefix("id: ")),
            ) {
                seqs.push(id.parse().unwrap());
            }
        }
    }
}

/// Posts batch `b` (task ids `k-<b>-<i>`) to the first host of `order` that acknowledges
/// it; returns the acknowledged ids.
async fn post_batch(hosts: &[String], order: &[usize], b: usize) -> Vec<String> {
    let ids: Vec<String> = (0..4).map(|i| format!("k-{b}-{i}")).collect();
    let body: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"type":"task-received","uuid":"{id}"}}"#))
        .collect();
    for &h in order {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/events", hosts[h]))
            .bearer_auth(common::producer())
            .body(format!("[{}]", body.join(",")))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if resp.is_ok_and(|r| r.status() == 202) {
            return ids;
        }
    }
    panic!("no host acknowledged batch {b}");
}

#[tokio::test]
async fn kill_9_of_a_host_mid_stream_loses_nothing_and_its_clients_resume_elsewhere() {
    let redis = Arc::new(common::RedisServer::start());
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let stores: Vec<_> = dirs
        .iter()
        .map(|d| common::TestStore::redis(d.path(), redis.clone()))
        .collect();
    let fast = ["--rate-per-sec", "100000"];
    let (mut a, base_a) = common::spawn_binary_with(dirs[0].path(), &stores[0], &fast);
    let (mut b, base_b) = common::spawn_binary_with(dirs[1].path(), &stores[1], &fast);
    let hosts = vec![base_a, base_b];
    let (head_tx, head_rx) = watch::channel(0u64);
    // Two clients start on host A (the one to be killed), one on B.
    let clients: Vec<_> = [0, 0, 1]
        .into_iter()
        .map(|first| tokio::spawn(roaming_client(hosts.clone(), first, head_rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut acknowledged = BTreeSet::new();
    for batch in 0..40 {
        if batch == 15 {
            a.kill().unwrap(); // SIGKILL, mid-stream
            a.wait().unwrap();
        }
        let order = if batch % 2 == 0 { [0, 1] } else { [1, 0] };
        acknowledged.extend(post_batch(&hosts, &order, batch).await);
    }
    let head: u64 = redis
        .command("GET meta/seq")
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    head_tx.send(head).unwrap();
    let expected: Vec<u64> = (1..=head).collect();
    for (i, c) in clients.into_iter().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("client done")
            .unwrap();
        assert_eq!(got, expected, "client {i}: every event once, in order");
    }
    // Every acknowledged event is in the log (a batch cut off by the kill may be there
    // twice, once from the retry: at-least-once, never lost).
    let (_, feed) = common::send(
        reqwest::Client::new()
            .get(format!(
                "{}/api/v1/events?since=0&timeout=0&limit=5000&topics=celery:tasks",
                hosts[1]
            ))
            .bearer_auth(common::admin()),
    )
    .await;
    let logged: BTreeSet<String> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<_> = acknowledged.difference(&logged).collect();
    assert!(lost.is_empty(), "acknowledged but not logged: {lost:?}");
    b.kill().unwrap();
    b.wait().unwrap();
}

#[tokio::test]
async fn a_redis_restart_is_a_clean_503_then_everything_carries_on() {
    let (redis, hosts) = common::start_cluster(2, |_| {}).await;
    let mut clients = Vec::new();
    for h in &hosts {
        let url = h.url("/events?topics=celery:tasks");
        clients.push(common::SseClient::connect(&url, &common::admin()).await);
    }
    assert_eq!(
        hosts[0]
            .ingest(r#"{"type":"task-received","uuid":"before"}"#)
            .await
            .0,
        202
    );
    for c in &mut clients {
        assert_eq!(c.next().await.id.as_deref(), Some("1"));
    }

    redis.kill();
    for h in &hosts {
        let started = Instant::now();
        let (status, body) = h
            .ingest(r#"{"type":"task-received","uuid":"during"}"#)
            .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["status"], 503);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered in {:?}",
            started.elapsed()
        );
        let (status, ready) = h.get("/ready").await;
        assert_eq!(status, 503, "{ready}");
        assert!(
            ready["error"]["message"]
                .as_str()
                .unwrap()
                .contains("store"),
            "{ready}"
        );
        assert_eq!(h.get("/api/v1/tasks/before").await.0, 503);
    }

    redis.restart();
    for h in &hosts {
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.get("/ready").await.0 != 200 {
            assert!(Instant::now() < deadline, "ready again after the restart");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        hosts[1]
            .ingest(r#"{"type":"task-received","uuid":"after"}"#)
            .await
            .0,
        202
    );
    // The same connections, never closed, carry on from where they were.
    for c in &mut clients {
        let m = c.next().await;
        assert_eq!(m.id.as_deref(), Some("2"), "{m:?}");
        let data: Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(data["key"], "after");
    }
    assert_eq!(
        hosts[0].get("/api/v1/tasks/before").await.1["state"],
        "RECEIVED"
    );
}
