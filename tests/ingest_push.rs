//! Ingest → an SSE client and a WebSocket client both receive every event, in order.

mod common;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use vigil_core::auth::Role;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(host: &common::TestHost, token: &str) -> Ws {
    let url = format!(
        "ws://{}/ws?topics=celery:tasks&access_token={token}",
        host.running.addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = ws_next(&mut ws).await;
    assert_eq!(hello["type"], "connected");
    ws
}

async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("WebSocket message in time")
            .unwrap()
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

const EVENTS: &str = r#"[
  {"type":"task-received","uuid":"job-1","name":"embed","routing_key":"embedding","timestamp":100},
  {"type":"task-started","uuid":"job-1","hostname":"w1","timestamp":101},
  {"type":"task-received","uuid":"job-2","name":"add","routing_key":"celery","timestamp":102}
]"#;

#[tokio::test]
async fn sse_and_websocket_receive_every_event_in_order() {
    let host = common::start().await;
    // Task updates only (each change is also a seed 003 `job-*` event on `jobs`).
    let mut sse =
        common::SseClient::connect(&host.url("/events?topics=celery:tasks"), &common::admin())
            .await;
    assert_eq!(sse.initial["seq"], 0, "the snapshot of an empty store");
    let mut ws = ws_connect(&host, &common::admin()).await;

    assert_eq!(host.ingest(EVENTS).await.0, 202);
    let (status, _) = host
        .ingest(r#"{"type":"task-succeeded","uuid":"job-1","result":"ok","runtime":1.5,"timestamp":103}"#)
        .await;
    assert_eq!(status, 202);

    let expected = [
        ("job-1", "RECEIVED"),
        ("job-1", "STARTED"),
        ("job-2", "RECEIVED"),
        ("job-1", "SUCCESS"),
    ];
    let mut last = 0;
    for (id, state) in expected {
        let m = sse.next().await;
        assert_eq!(m.event, "task_update");
        let seq: u64 = m.id.as_deref().unwrap().parse().unwrap();
        assert!(seq > last, "sequence numbers increase");
        last = seq;
        let sse_event: Value = serde_json::from_str(&m.data).unwrap();
        let ws_event = ws_next(&mut ws).await;
        assert_eq!(
            sse_event, ws_event,
            "both transports carry the same envelope"
        );
        assert_eq!(ws_event["seq"], seq);
        assert_eq!(ws_event["type"], "task_update");
        assert_eq!(ws_event["topic"], "celery:tasks");
        assert_eq!(ws_event["data"]["id"], id);
        assert_eq!(ws_event["data"]["state"], state);
    }
    let done = ws_next_after_ping(&mut ws).await;
    assert_eq!(done["type"], "pong");
}

async fn ws_next_after_ping(ws: &mut Ws) -> Value {
    ws.send(Message::Text(r#"{"type":"ping","timestamp":42}"#.into()))
        .await
        .unwrap();
    let pong = ws_next(ws).await;
    assert_eq!(pong["timestamp"], 42);
    pong
}

#[tokio::test]
async fn filters_and_ownership_narrow_what_a_subscriber_gets() {
    let host = common::start().await;
    let alice = common::token("alice", Role::Viewer);
    let mut mine =
        common::SseClient::connect(&host.url("/events?topics=celery:tasks"), &alice).await;
    let mut embedding = common::SseClient::connect(
        &host.url("/events?topics=celery:tasks&queues=embedding"),
        &common::admin(),
    )
    .await;
    let batch = r#"[
      {"type":"task-received","uuid":"b1","owner":"bob","routing_key":"embedding"},
      {"type":"task-received","uuid":"a1","owner":"alice","routing_key":"celery"},
      {"type":"task-received","uuid":"a2","owner":"alice","routing_key":"embedding"}
    ]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    let ids = |m: common::SseMessage| {
        serde_json::from_str::<Value>(&m.data).unwrap()["data"]["id"].clone()
    };
    assert_eq!(ids(mine.next().await), "a1", "alice never sees bob's task");
    assert_eq!(ids(mine.next().await), "a2");
    assert_eq!(ids(embedding.next().await), "b1");
    assert_eq!(
        ids(embedding.next().await),
        "a2",
        "celery-queue task filtered out"
    );
}

#[tokio::test]
async fn msgpack_websocket_gets_binary_frames() {
    let host = common::start().await;
    let url = format!(
        "ws://{}/ws?encoding=msgpack&access_token={}",
        host.running.addr,
        common::admin()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(ws_next(&mut ws).await["type"], "connected");
    host.ingest(r#"{"type":"task-started","uuid":"m1"}"#).await;
    let bytes = loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg {
            Message::Binary(b) => break b,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected binary, got {other:?}"),
        }
    };
    let v: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["seq"].as_u64(), v["data"]["id"].as_str()),
        (Some(1), Some("m1"))
    );
}
