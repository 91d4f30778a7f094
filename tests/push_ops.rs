//! Push, past connect: SSE `initial_data`/`dashboard_update`/gzip, tokens expiring and
//! refreshed on open connections, the native WebSocket's `subscribe`, slow consumers
//! (degraded, then disconnected) never delaying a fast one, and `/metrics`, `/ready`.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use vigil_core::auth::Role;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_open(host: &common::TestHost, query: &str) -> Ws {
    let url = format!("ws://{}/ws?{query}", host.running.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(ws_json(&mut ws).await["type"], "connected");
    ws
}

/// The next JSON text message (pings skipped); panics after 10 s.
async fn ws_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a WebSocket message in time")
            .expect("the socket open")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[tokio::test]
async fn sse_starts_with_a_snapshot_and_sends_dashboard_updates_when_something_changed() {
    let host = common::start_with(|c| c.push.dashboard_interval = Duration::from_millis(300)).await;
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"before","name":"x"}"#)
            .await
            .0,
        202
    );
    // Wait until it is sequenced, so the snapshot must hold it.
    while host.get("/api/v1/events?since=0&timeout=0").await.1["seq"] == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sse = common::SseClient::connect(&host.url("/events"), &common::admin()).await;
    assert_eq!(sse.initial["tasks"][0]["id"], "before");
    assert_eq!(
        sse.initial["seq"], 1,
        "the snapshot says where push resumes (one log entry per task change)"
    );

    assert_eq!(
        host.ingest(r#"{"type":"task-started","uuid":"before"}"#)
            .await
            .0,
        202
    );
    let update = loop {
        let m = sse.next().await;
        if m.event == "dashboard_update" {
            break m;
        }
    };
    let snapshot: Value = serde_json::from_str(&update.data).unwrap();
    assert_eq!(snapshot["tasks"][0]["state"], "STARTED");
    assert_eq!(
        update.id.as_deref(),
        Some("2"),
        "its id is the snapshot's seq"
    );
    let resources = sse.next().await;
    assert_eq!(resources.event, "resources_update");
    let health: Value = serde_json::from_str(&resources.data).unwrap();
    assert!(health["workers"].is_array() && health["queues"].is_array());
    assert!(health.get("tasks").is_none());
}

#[tokio::test]
async fn oversized_and_binary_websocket_frames_are_refused_without_harm() {
    let host = common::start().await;
    let query = format!("access_token={}", common::admin());
    let mut ws = ws_open(&host, &query).await;
    ws.send(Message::Binary(vec![0u8; 16].into()))
        .await
        .unwrap();
    ws_send(
        &mut ws,
        serde_json::json!({ "type": "ping", "timestamp": 1 }),
    )
    .await;
    assert_eq!(
        ws_json(&mut ws).await["type"],
        "pong",
        "binary frames are ignored"
    );

    let huge = "x".repeat(128 * 1024);
    let _ = ws.send(Message::Text(huge.into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a message over 64 KiB ends the connection");
    // The server is unharmed: a new connection works.
    let mut again = ws_open(&host, &query).await;
    ws_send(
        &mut again,
        serde_json::json!({ "type": "ping", "timestamp": 2 }),
    )
    .await;
    assert_eq!(ws_json(&mut again).await["timestamp"], 2);
}

#[tokio::test]
async fn sse_is_gzipped_when_asked_and_each_message_arrives_at_once() {
    let host = common::start().await;
    let resp = reqwest::Client::new()
        .get(host.url("/events?topics=celery:tasks"))
        .bearer_auth(common::admin())
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let mut body = resp.bytes_stream();
    let mut text = flate2::write::GzDecoder::new(Vec::new());
    let mut read_until = async |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let so_far = String::from_utf8_lossy(text.get_ref()).into_owned();
            if so_far.contains(needle) {
                return so_far;
            }
            assert!(Instant::now() < deadline, "no `{needle}` in {so_far:?}");
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("a chunk in time")
                .unwrap()
                .unwrap();
            text.write_all(&chunk).unwrap();
            text.flush().unwrap();
        }
    };
    read_until("event: initial_data").await;
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"zipped","name":"x"}"#)
            .await
            .0,
        202
    );
    // The stream stays open: the event must decode from what was flushed so far.
    let all = read_until("\"zipped\"").await;
    assert!(all.contains("event: task_update"), "{all}");
}

#[tokio::test]
async fn an_expired_token_ends_sse_and_websocket_with_auth_error() {
    let host = common::start().await;
    let short = common::token_with("carol", Role::Viewer, 2, common::SECRET);
    let mut sse = common::SseClient::connect(&host.url("/events"), &short).await;
    let mut ws = ws_open(&host, &format!("access_token={short}")).await;
    let started = Instant::now();
    let m = loop {
        let m = sse.next().await;
        if m.event != "dashboard_update" {
            break m;
        }
    };
    assert_eq!(m.event, "auth-error");
    let body: Value = serde_json::from_str(&m.data).unwrap();
    assert_eq!(body["code"], "token_expired");
    assert!(started.elapsed() < Duration::from_secs(5));

    assert_eq!(ws_json(&mut ws).await["type"], "auth-error");
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 4001),
        other => panic!("expected close 4001, got {other:?}"),
    }
    let text = host.metrics().await;
    assert!(text.contains("vigil_token_expired_total 2"), "{text}");
}

#[tokio::test]
async fn a_websocket_refresh_keeps_the_connection_and_a_role_change_applies() {
    let host = common::start().await;
    let short = common::token_with("carol", Role::Viewer, 2, common::SECRET);
    let mut ws = ws_open(&host, &format!("topics=celery:tasks&access_token={short}")).await;

    let other = common::token_with("mallory", Role::Viewer, 3600, common::SECRET);
    ws_send(
        &mut ws,
        serde_json::json!({ "type": "refresh", "token": other, "id": 1 }),
    )
    .await;
    let refused = ws_json(&mut ws).await;
    assert_eq!(
        (refused["type"].as_str(), refused["id"].as_i64()),
        (Some("error"), Some(1))
    );
    assert_eq!(refused["code"], "forbidden");

    // The same user, now an admin: it sees everyone's tasks from here on.
    let long = common::token_with("carol", Role::Admin, 3600, common::SECRET);
    ws_send(
        &mut ws,
        serde_json::json!({ "type": "refresh", "token": long, "id": 2 }),
    )
    .await;
    let ok = ws_json(&mut ws).await;
    assert_eq!(
        (ok["type"].as_str(), ok["role"].as_str(), ok["id"].as_i64()),
        (Some("refreshed"), Some("admin"), Some(2))
    );

    tokio::time::sleep(Duration::from_secs(3)).await; // past the first token's expiry
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"bobs","owner":"bob"}"#)
            .await
            .0,
        202
    );
    let ev = ws_json(&mut ws).await;
    assert_eq!(
        (ev["type"].as_str(), ev["data"]["id"].as_str()),
        (Some("task_update"), Some("bobs"))
    );
}

#[tokio::test]
async fn a_websocket_subscribe_message_replaces_the_filter() {
    let host = common::start().await;
    let mut ws = ws_open(
        &host,
        &format!("topics=celery:tasks&access_token={}", common::admin()),
    )
    .await;
    ws_send(
        &mut ws,
        serde_json::json!({ "type": "subscribe", "topics": ["celery:tasks"], "queues": ["q2"], "id": "s1" }),
    )
    .await;
    let ack = ws_json(&mut ws).await;
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str()),
        (Some("subscribed"), Some("s1"))
    );
    assert_eq!(ack["queues"], serde_json::json!(["q2"]));
    let batch = r#"[{"type":"task-received","uuid":"in-q1","routing_key":"q1"},
                    {"type":"task-received","uuid":"in-q2","routing_key":"q2"}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    assert_eq!(ws_json(&mut ws).await["data"]["id"], "in-q2");

    ws_send(
        &mut ws,
        serde_json::json!({ "type": "subscribe", "queues": "q1" }),
    )
    .await;
    let bad = ws_json(&mut ws).await;
    assert_eq!(
        (bad["type"].as_str(), bad["code"].as_str()),
        (Some("error"), Some("invalid_field"))
    );
    ws_send(
        &mut ws,
        serde_json::json!({ "type": "ping", "timestamp": 5 }),
    )
    .await;
    assert_eq!(
        ws_json(&mut ws).await["type"],
        "pong",
        "a bad message never ends the connection"
    );
}

/// A client that stops reading is first degraded (a `degraded` marker, then only the
/// latest state of each task), then disconnected; a fast client on the same server
/// gets every event meanwhile, promptly.
#[tokio::test]
async fn a_slow_consumer_is_degraded_then_dropped_and_never_delays_a_fast_one() {
    let host = common::start_with(|c| {
        c.push.rate_per_sec = 0; // no batching: every event is a message
        c.push.queue_capacity = 128;
        c.push.max_held = 20;
        c.rest_rate_per_sec = 0;
        // The hub's policy is under test, not the write timeout (tests/connections.rs)
        // nor the heartbeat check (two unanswered pings): on a loaded machine the burst
        // below can outlast either without the slow client reading, and the socket would
        // be shut before its marker is read.
        c.connections.write_timeout = Duration::from_secs(600);
        c.push.heartbeat = Duration::from_secs(600);
    })
    .await;
    let admin = common::admin();
    let mut fast = ws_open(&host, &format!("topics=celery:tasks&access_token={admin}")).await;
    // The slow client's socket is opened with a tiny receive buffer and then not read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(host.running.addr).await.unwrap();
    let url = format!(
        "ws://{}/ws?topics=celery:tasks&access_token={admin}",
        host.running.addr
    );
    let (slow, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();

    // Large events, so the slow client's socket buffers fill and its queue backs up.
    let pad = "x".repeat(16 * 1024);
    let (chunks, per_chunk) = (40, 30);
    let mut slowest = Duration::ZERO;
    for chunk in 0..chunks {
        let events: Vec<String> = (0..per_chunk)
            .map(|i| {
                let id = (chunk * per_chunk + i) % 50;
                format!(r#"{{"type":"task-received","uuid":"t{id}","kwargs":{{"pad":"{pad}"}}}}"#)
            })
            .collect();
        let started = Instant::now();
        assert_eq!(host.ingest(&format!("[{}]", events.join(","))).await.0, 202);
        // The fast client keeps up: every update of the chunk, before the next one.
        let mut got = 0;
        while got < per_chunk {
            let v = ws_json(&mut fast).await;
            assert_ne!(v["type"], "degraded", "the fast client is never degraded");
            if v["type"] == "task_update" {
                got += 1;
            }
        }
        slowest = slowest.max(started.elapsed());
    }
    // Blocked behind the slow client, a chunk would wait for its write timeout (600 s
    // here); 10 s leaves room for a loaded machine.
    assert!(
        slowest < Duration::from_secs(10),
        "a chunk took {slowest:?} to reach the fast client"
    );
    let total = chunks * per_chunk;

    // Now read what the slow one was sent: a `degraded` marker, and finally the close.
    let mut slow = slow;
    let mut connected = false;
    let mut degraded_at = None;
    let mut after_marker = 0;
    let mut kinds: Vec<String> = Vec::new();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if kinds.last().map(String::as_str) != v["type"].as_str() {
                    kinds.push(v["type"].as_str().unwrap_or("?").to_string());
                }
                connected |= v["type"] == "connected";
                if v["type"] == "degraded" {
                    degraded_at = Some(v);
                } else if degraded_at.is_some() {
                    after_marker += 1;
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                kinds.push(format!("error {e}"));
                break None;
            }
            Ok(None) => break None,
            Err(_) => panic!("the slow client was neither closed nor left alone"),
        }
    };
    assert!(connected, "{kinds:?}");
    assert!(
        degraded_at.is_some(),
        "a degraded marker came first; the slow client got {kinds:?} then {close:?}"
    );
    let frame = close.expect("a close frame with the reason");
    assert!(frame.reason.contains("slow consumer"), "{}", frame.reason);
    assert!(after_marker < total, "latest state only after the marker");

    let text = host.metrics().await;
    assert!(text.contains("vigil_degraded_total 1"), "{text}");
    assert!(text.contains("vigil_dropped_total 1"), "{text}");
}

#[tokio::test]
async fn metrics_count_connections_messages_and_resumes_and_ready_answers() {
    let host = common::start().await;
    let (status, ready) = host.get("/ready").await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));

    let mut sse =
        common::SseClient::connect(&host.url("/events?topics=celery:tasks"), &common::admin())
            .await;
    let _ws = ws_open(&host, &format!("access_token={}", common::admin())).await;
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"m1"}"#)
            .await
            .0,
        202
    );
    assert_eq!(sse.next().await.event, "task_update");
    let resumed = reqwest::Client::new()
        .get(host.url("/events"))
        .bearer_auth(common::admin())
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    let _resumed = common::SseClient::from_response(resumed).await;

    let resp = reqwest::get(host.url("/metrics")).await.unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(value("vigil_connections{transport=\"sse\"}"), 2.0);
    assert_eq!(value("vigil_connections{transport=\"websocket\"}"), 1.0);
    assert!(value("vigil_messages_sent_total{event=\"task_update\"}") >= 2.0);
    assert!(value("vigil_messages_sent_total{event=\"job-queued\"}") >= 1.0);
    assert!(value("vigil_message_bytes_count") >= 3.0);
    assert!(value("vigil_dispatch_call_seconds_count") >= 1.0);
    assert_eq!(value("vigil_events_published_total"), 2.0);
    assert_eq!(value("vigil_resume_hits_total"), 1.0);
}

#[tokio::test]
async fn metrics_count_distinct_subscriptions_not_connections() {
    let host = common::start().await;
    let tasks = host.url("/events?topics=celery:tasks");
    let mut same = Vec::new();
    for _ in 0..3 {
        same.push(common::SseClient::connect(&tasks, &common::admin()).await);
    }
    let mut other = common::SseClient::connect(
        &host.url("/events?topics=celery:tasks&states=FAILURE"),
        &common::admin(),
    )
    .await;
    assert_eq!(
        host.ingest(r#"{"type":"task-failed","uuid":"d1","exception":"boom"}"#)
            .await
            .0,
        202
    );
    for sse in &mut same {
        assert_eq!(sse.next().await.event, "task_update");
    }
    assert_eq!(other.next().await.event, "task_update");
    // Three connections share one filter, the fourth has its own: two subscriptions.
    assert_eq!(
        host.metric("vigil_push_subscriptions_distinct").await,
        Some(2.0)
    );
    let records = host.metric("vigil_dispatch_records_total").await.unwrap();
    assert!(records >= 2.0, "{records}");
}
