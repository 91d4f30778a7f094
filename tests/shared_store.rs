//! Components running outside the host (as under `spin up`) on the same store: the
//! host's relay still finds what they publish and pushes it, in order.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use serde_json::Value;
use vigil_kv::Stores;
use vigil_runtime::http::HttpComponents;
use vigil_runtime::key_value::KeyValue;
use vigil_runtime::manifest::Manifest;

/// Another runtime (standing in for `spin up`): its own engine and its own connection to
/// the host's store (the SQLite file, or Redis), sharing nothing in memory with the
/// host, and no host hooks: its outbox writes land in the store, as under Spin.
async fn other_runtime(host: &common::TestHost) -> HttpComponents {
    let data = &host.data;
    let rc = host.store.runtime_config.as_deref();
    let engine = vigil_runtime::engine::build().unwrap();
    vigil_runtime::engine::start_epoch_ticker(&engine);
    let manifest = Manifest::load(&common::manifest()).unwrap();
    let stores = KeyValue::new(
        Stores::open(&vigil_kv::config::load(rc, data).unwrap())
            .await
            .unwrap(),
    );
    let vars = HashMap::from([("jwt_secret".to_owned(), common::SECRET.to_owned())]);
    let app_vars = vigil_runtime::variables::resolve_app(&manifest, &vars).unwrap();
    let app_dir = common::manifest().parent().unwrap().to_path_buf();
    HttpComponents::load(
        &engine,
        &manifest,
        &app_dir,
        &app_vars,
        Arc::new(stores),
        Duration::from_secs(10),
    )
    .unwrap()
}

#[tokio::test]
async fn events_published_by_another_runtime_are_relayed() {
    let host = common::start().await;
    let mut sse =
        common::SseClient::connect(&host.url("/events?topics=celery:tasks"), &common::admin())
            .await;
    let spin = other_runtime(&host).await;
    for (i, kind) in ["task-received", "task-started"].iter().enumerate() {
        let body = format!(r#"{{"type":"{kind}","uuid":"ext-1","timestamp":{i}}}"#);
        let req = http::Request::post("/api/v1/events")
            .header("authorization", format!("Bearer {}", common::producer()))
            .body(Body::from(body))
            .unwrap();
        let resp = spin.handle(req, "127.0.0.1:9".parse().unwrap()).await;
        assert_eq!(resp.status(), 202);
    }
    // One log entry per change (the `job-*` derived from each is filtered out here).
    for (seq, state) in [(1, "RECEIVED"), (2, "STARTED")] {
        let m = sse.next().await;
        let ev: Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(
            (ev["seq"].as_u64(), ev["data"]["state"].as_str()),
            (Some(seq), Some(state))
        );
    }
    // The host reads the same records the other runtime wrote.
    assert_eq!(host.get("/api/v1/tasks/ext-1").await.1["state"], "STARTED");
}

#[tokio::test]
async fn shutdown_tells_push_clients_to_reconnect() {
    let host = common::start().await;
    let mut sse = common::SseClient::connect(&host.url("/events"), &common::admin()).await;
    let stopping = tokio::spawn(host.running.stop());
    let m = sse.next().await;
    assert_eq!(m.event, "disconnect");
    assert!(m.data.contains("shutting down"), "{}", m.data);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes with a push client connected")
        .unwrap()
        .unwrap();
}
