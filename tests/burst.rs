//! A burst never disconnects a reading client (issue 11, deliverable 2): 20 000
//! distinct task updates posted as fast as the ingest API takes them, with three
//! native WebSocket clients at the default rate limit — one reading as fast as it can,
//! one reading 100 messages a second, one that never reads. The readers end with every
//! task's latest state (from updates, and from the snapshot a `reset` tells them to
//! refetch) and are never closed; the stalled one loses its socket within the write
//! timeout.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const TASKS: usize = 20_000;
const BATCH: usize = 1000;
/// Longest a reader may take to hold every task's state after the burst.
const CATCH_UP: Duration = Duration::from_secs(180);

/// Every task id in `v` (task records: objects with an `id` and a `state`).
fn task_ids(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(id)), Some(_)) = (m.get("id"), m.get("state")) {
                out.insert(id.clone());
            }
            m.values().for_each(|x| task_ids(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| task_ids(x, out)),
        _ => {}
    }
}

/// The snapshot a `reset` asks for: every task, page by page with `next_cursor`
/// (offsets stop at 10 000; the cursor, URL-safe, pages on without gaps).
async fn snapshot(host: &common::TestHost, seen: &mut HashSet<String>) {
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/tasks?limit={BATCH}&cursor={c}"),
            None => format!("/api/v1/tasks?limit={BATCH}"),
        };
        let (status, page) = host.get(&url).await;
        assert_eq!(status, 200, "{page}");
        task_ids(&page["tasks"], seen);
        match page["next_cursor"].as_str() {
            Some(c) if !page["tasks"].as_array().is_none_or(|t| t.is_empty()) => {
                cursor = Some(c.to_string())
            }
            _ => return,
        }
    }
}

/// Reads until it holds all tasks; `pace` between messages. Returns (messages, resets).
async fn reader(host: &common::TestHost, pace: Option<Duration>) -> (usize, usize) {
    let url = format!(
        "ws://{}/ws?access_token={}&topics=celery:tasks",
        host.running.addr,
        common::admin()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut seen = HashSet::new();
    let (mut messages, mut resets) = (0, 0);
    let deadline = Instant::now() + CATCH_UP;
    while seen.len() < TASKS {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {TASKS} tasks after {CATCH_UP:?}", seen.len()));
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(f))) => panic!("a reader was closed: {f:?}"),
            Some(Ok(_)) => continue,
            other => panic!("a reader lost its connection: {other:?}"),
        };
        messages += 1;
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["type"] == "reset" {
            resets += 1;
            snapshot(host, &mut seen).await;
        }
        task_ids(&v, &mut seen);
        if let Some(p) = pace {
            tokio::time::sleep(p).await;
        }
    }
    (messages, resets)
}

#[tokio::test]
async fn a_burst_resets_readers_and_closes_only_the_stalled_client() {
    let write_timeout = Duration::from_secs(3);
    let host = common::start_with(|c| {
        c.connections.write_timeout = write_timeout;
        c.push.heartbeat = Duration::from_secs(2);
        c.rest_rate_per_sec = 0;
    })
    .await;
    let mut stalled = tokio::net::TcpStream::connect(host.running.addr)
        .await
        .unwrap();
    let upgrade = format!(
        "GET /ws?access_token={} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        common::admin()
    );
    stalled.write_all(upgrade.as_bytes()).await.unwrap();
    let burst = async {
        tokio::time::sleep(Duration::from_millis(500)).await; // readers subscribed
        for start in (0..TASKS).step_by(BATCH) {
            let events: Vec<Value> = (start..start + BATCH)
                .map(|i| serde_json::json!({"type": "task-received", "uuid": format!("burst-{i}"), "name": "b"}))
                .collect();
            let (status, body) = host.ingest(&Value::Array(events).to_string()).await;
            assert_eq!(status, 202, "{body}");
        }
        Instant::now()
    };
    let (burst_tx, burst_rx) = tokio::sync::oneshot::channel();
    let burst = async {
        let done = burst.await;
        let _ = burst_tx.send(done);
        done
    };
    // Server side: when the stalled client's connection ends (the gauge drops to the
    // two readers), counted from the end of the burst.
    let stalled_gone = async {
        let done = burst_rx.await.unwrap();
        loop {
            let open = host
                .metric("vigil_connections{transport=\"websocket\"}")
                .await;
            if open.is_some_and(|n| n <= 2.0) {
                return done.elapsed();
            }
            assert!(
                done.elapsed() < Duration::from_secs(60),
                "the stalled client is still connected"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let (fast, paced, burst_done, gone) = tokio::join!(
        reader(&host, None),
        reader(&host, Some(Duration::from_millis(10))),
        burst,
        stalled_gone,
    );
    println!("stalled client's connection ended {gone:?} after the burst");
    let limit = Duration::from_secs(2) * 3 + write_timeout + Duration::from_secs(5);
    assert!(
        gone < limit,
        "closed after {gone:?}, wanted under {limit:?}"
    );
    println!(
        "fast reader: {} messages, {} resets; 100 msg/s reader: {} messages, {} resets",
        fast.0, fast.1, paced.0, paced.1
    );
    // The stalled client answers no heartbeat, so it is closed after two (4 s here) and
    // its socket is gone within the write timeout after that: what it finds now, once
    // it reads its buffers, is the end of the stream.
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the stalled client's socket is still open"),
        }
    }
    let _ = burst_done;
}
