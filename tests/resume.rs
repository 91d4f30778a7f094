//! Resume: a client that reconnects with its last sequence number gets every event it
//! missed, in order, without duplicates, then the live ones; too far behind, a `reset`.

mod common;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

fn seq(m: &common::SseMessage) -> u64 {
    m.id.as_deref().unwrap().parse().unwrap()
}

async fn ingest_n(host: &common::TestHost, from: u32, n: u32) {
    let events: Vec<String> = (from..from + n)
        .map(|i| format!(r#"{{"type":"task-received","uuid":"r{i}"}}"#))
        .collect();
    assert_eq!(host.ingest(&format!("[{}]", events.join(","))).await.0, 202);
}

#[tokio::test]
async fn sse_resume_after_a_forced_disconnect_has_no_gap_and_no_duplicate() {
    let host = common::start().await;
    // Task updates only: one event per log entry (each also brings a `job-*`).
    let url = host.url("/events?topics=celery:tasks");
    let mut first = common::SseClient::connect(&url, &common::admin()).await;
    ingest_n(&host, 1, 3).await;
    let seen: Vec<u64> = vec![
        seq(&first.next().await),
        seq(&first.next().await),
        seq(&first.next().await),
    ];
    assert_eq!(seen, [1, 2, 3]);
    drop(first); // the connection dies

    ingest_n(&host, 4, 2).await; // missed while away
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(common::admin())
        .header("Last-Event-ID", "3")
        .send()
        .await
        .unwrap();
    let mut again = common::SseClient::from_response(resp).await;
    ingest_n(&host, 6, 1).await; // live after reconnecting
    let resumed: Vec<u64> = vec![
        seq(&again.next().await),
        seq(&again.next().await),
        seq(&again.next().await),
    ];
    assert_eq!(resumed, [4, 5, 6]);
}

#[tokio::test]
async fn websocket_resumes_from_since() {
    let host = common::start().await;
    ingest_n(&host, 1, 4).await;
    // Wait until the four are in the log, then resume from 2.
    for _ in 0..100 {
        if host.get("/api/v1/events?since=0&timeout=0").await.1["seq"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let url = format!(
        "ws://{}/ws?since=2&topics=celery:tasks&access_token={}",
        host.running.addr,
        common::admin()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "connected" {
                continue;
            }
            got.push(v["seq"].as_u64().unwrap());
            if got.len() == 2 {
                ingest_n(&host, 5, 1).await;
            }
        }
    }
    assert_eq!(got, [3, 4, 5]);
}

#[tokio::test]
async fn too_far_behind_gets_a_reset() {
    let host = common::start_with(|c| c.history = 3).await;
    ingest_n(&host, 1, 6).await; // 6 log entries (a `task_update` each)
    for _ in 0..100 {
        if host.get("/api/v1/events?since=5&timeout=0").await.1["seq"] == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_sse_reset(&host, 1, 6).await;
    // The feed says the same.
    assert_eq!(
        host.get("/api/v1/events?since=1&timeout=0").await.1["reset"],
        true
    );

    // A cursor past the head comes from a history this server does not have (e.g. its
    // data was wiped): taking it as is would hide every event up to it.
    assert_sse_reset(&host, 999, 6).await;
    let (status, body) = host.get("/api/v1/events?since=999&timeout=0").await;
    assert_eq!(status, 200);
    assert_eq!(body["reset"], true, "{body}");
    assert_eq!(body["seq"], 6);
}

/// An SSE client resuming after `since` is told to reset to `head`.
async fn assert_sse_reset(host: &common::TestHost, since: u64, head: u64) {
    let resp = reqwest::Client::new()
        .get(host.url(&format!("/events?since={since}")))
        .bearer_auth(common::admin())
        .send()
        .await
        .unwrap();
    let mut sse = common::SseClient::from_response(resp).await;
    let m = sse.next().await;
    assert_eq!(m.event, "reset", "since={since}");
    assert_eq!(serde_json::from_str::<Value>(&m.data).unwrap()["seq"], head);
}
