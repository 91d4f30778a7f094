//! The built `.wasm` components, loaded into wasmtime and called directly (no server).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use vigil_core::auth::Role;
use vigil_kv::Stores;
use vigil_push::dispatch::{
    Decision, DispatchComponent, Encoding, Event, Filter, RateState, Subscriber,
};
use vigil_runtime::http::HttpComponents;
use vigil_runtime::key_value::KeyValue;
use vigil_runtime::manifest::Manifest;

fn wasm(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release")
        .join(name)
}

async fn call(
    c: &HttpComponents,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("host", "localhost")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = c.handle(req, "127.0.0.1:9".parse().unwrap()).await;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The manifest's components on a fresh engine, with the test store (`VIGIL_TEST_BACKEND`)
/// in `data`.
async fn load_components(
    data: &std::path::Path,
) -> (HttpComponents, Arc<KeyValue>, common::TestStore) {
    let store = common::TestStore::from_env(data);
    let engine = vigil_runtime::engine::build().unwrap();
    vigil_runtime::engine::start_epoch_ticker(&engine);
    let manifest = Manifest::load(&common::manifest()).unwrap();
    let stores = Arc::new(KeyValue::new(
        Stores::open(&vigil_kv::config::load(store.runtime_config.as_deref(), data).unwrap())
            .await
            .unwrap(),
    ));
    let vars = HashMap::from([("jwt_secret".to_owned(), common::SECRET.to_owned())]);
    let app_vars = vigil_runtime::variables::resolve_app(&manifest, &vars).unwrap();
    let app_dir = common::manifest().parent().unwrap().to_path_buf();
    let c = HttpComponents::load(
        &engine,
        &manifest,
        &app_dir,
        &app_vars,
        stores.clone(),
        Duration::from_secs(10),
    )
    .unwrap();
    (c, stores, store)
}

#[tokio::test]
async fn api_component_ingests_and_reads_through_the_spin_key_value_store() {
    let dir = tempfile::tempdir().unwrap();
    let (c, stores, _store) = load_components(dir.path()).await;

    let (s, _) = call(&c, "GET", "/health", "", "").await;
    assert_eq!(s, 200);
    let (s, b) = call(
        &c,
        "POST",
        "/api/v1/events",
        &common::producer(),
        r#"{"type":"task-failed","uuid":"x","exception":"boom"}"#,
    )
    .await;
    assert_eq!((s, b["accepted"].as_u64()), (202, Some(1)));
    let (s, task) = call(&c, "GET", "/api/v1/tasks/x", &common::admin(), "").await;
    assert_eq!(
        (s, task["state"].as_str(), task["exception"].as_str()),
        (200, Some("FAILURE"), Some("boom"))
    );

    // What the component wrote is in the store in Vigil's layout: the record and one outbox entry.
    let kv = stores.get("default").unwrap();
    assert!(kv.get("task/x").await.unwrap().is_some());
    let outbox = kv.scan_prefix("outbox/", 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    let events: Value = serde_json::from_slice(&outbox[0].1).unwrap();
    assert_eq!(events[0]["type"], "task_update");
    assert_eq!(events[0]["data"]["state"], "FAILURE");

    let viewer = common::token("v", Role::Viewer);
    let (s, _) = call(&c, "POST", "/api/v1/events", &viewer, "{}").await;
    assert_eq!(s, 403);
}

/// Without a host that parks long-polls (as under `spin up`), the component waits by
/// itself: it sees a job finish while it waits, and answers its timeout with the
/// timeout answer, never with a park answer.
#[tokio::test]
async fn without_parking_the_component_waits_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _stores, _store) = load_components(dir.path()).await;
    let admin = common::admin();
    let (s, job) = call(&c, "POST", "/api/admin/celery/jobs/j", &admin, "{}").await;
    assert_eq!(s, 202, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();
    let wait = format!("/api/admin/celery/jobs/{id}/wait?timeout=20");
    let started = std::time::Instant::now();
    let finish = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = format!(r#"{{"type":"task-succeeded","uuid":"{id}","result":"7"}}"#);
        call(&c, "POST", "/api/v1/events", &common::producer(), &done).await
    };
    let ((s, body), (ingested, _)) = tokio::join!(call(&c, "GET", &wait, &admin, ""), finish);
    assert_eq!(
        (ingested, s, body["status"].as_str()),
        (202, 200, Some("completed"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let started = std::time::Instant::now();
    let feed = "/api/v1/events?timeout=1&topics=nothing";
    let (s, body) = call(&c, "GET", feed, &admin, "").await;
    assert_eq!(
        (s, &body["events"]),
        (200, &serde_json::json!([])),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

fn event(seq: u64, key: &str) -> Event {
    Event {
        seq,
        kind: "task_update".into(),
        topic: "celery:tasks".into(),
        key: Some(key.into()),
        owner: Some("alice".into()),
        queue: Some("q".into()),
        state: Some("STARTED".into()),
        json: serde_json::json!({ "seq": seq, "type": "task_update", "data": { "id": key } })
            .to_string(),
    }
}

fn subscriber(encoding: Encoding, owner: Option<&str>, rate: u32) -> Subscriber {
    Subscriber {
        filter: Filter {
            topics: vec![],
            queues: vec![],
            states: vec![],
            keys: vec![],
            owner: owner.map(Into::into),
        },
        encoding,
        gzip: false,
        rate_per_sec: rate,
        rate: RateState {
            tokens_milli: u64::from(rate) * 1000,
            last_refill_ms: 0,
        },
        held_keys: vec![],
        held_count: 0,
        max_held: 10,
        degraded: false,
    }
}

#[tokio::test]
async fn dispatch_component_decides_a_batch() {
    let engine = vigil_runtime::engine::build().unwrap();
    vigil_runtime::engine::start_epoch_ticker(&engine);
    let mut d = DispatchComponent::load(&engine, &wasm("vigil_dispatch.wasm"))
        .await
        .unwrap();
    let events = [event(1, "a"), event(2, "b"), event(3, "b")];
    let subs = [
        subscriber(Encoding::Json, None, 0),
        subscriber(Encoding::Json, Some("alice"), 0),
        subscriber(Encoding::Msgpack, Some("bob"), 0),
        subscriber(Encoding::Json, None, 1),
    ];
    let plan = d.decide(0, &events, &subs).await.unwrap();
    let for_sub = |i: u32| {
        plan.deliveries
            .iter()
            .filter(|x| x.subscriber == i)
            .collect::<Vec<_>>()
    };
    assert_eq!(for_sub(0).len(), 3);
    assert_eq!(
        for_sub(0)[0].frame,
        for_sub(1)[0].frame,
        "one JSON frame shared"
    );
    assert!(for_sub(2).is_empty(), "bob owns none of these");
    let limited: Vec<Decision> = for_sub(3).iter().map(|x| x.decision).collect();
    assert_eq!(
        limited,
        [Decision::Send, Decision::Hold, Decision::Conflate]
    );
    assert_eq!(
        plan.frames[for_sub(0)[1].frame as usize].bytes,
        events[1].json.as_bytes()
    );

    let frame = d
        .encode_batch(&events[1..], Encoding::Msgpack, false)
        .await
        .unwrap();
    let v: Value = rmp_serde::from_slice(&frame.bytes).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["count"].as_u64()),
        (Some("batch_update"), Some(2))
    );
}

/// The API component must run on any Spin 2+ host: it may import only WASI 0.2 and the
/// Spin 2.0 key-value and variables interfaces, and must export wasi:http's handler.
#[test]
fn api_component_imports_only_what_every_spin_provides() {
    let engine = vigil_runtime::engine::build().unwrap();
    let component =
        wasmtime::component::Component::from_file(&engine, wasm("vigil_api.wasm")).unwrap();
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    for name in &imports {
        let allowed = name.starts_with("wasi:")
            || name == "fermyon:spin/key-value@2.0.0"
            || name == "fermyon:spin/variables@2.0.0";
        assert!(allowed, "unexpected import {name}");
    }
    assert!(imports.iter().any(|n| n == "fermyon:spin/key-value@2.0.0"));
    let exports: Vec<String> = ty
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(
        exports
            .iter()
            .any(|n| n.starts_with("wasi:http/incoming-handler@0.2.")),
        "{exports:?}"
    );
}

/// The dashboard component, like the API, must run on any Spin host: WASI only (it
/// opens no store and reads no variable), exporting wasi:http's handler.
#[test]
fn dashboard_component_imports_only_wasi() {
    let engine = vigil_runtime::engine::build().unwrap();
    let component =
        wasmtime::component::Component::from_file(&engine, wasm("vigil_dashboard.wasm")).unwrap();
    let ty = component.component_type();
    for (name, _) in ty.imports(&engine) {
        assert!(name.starts_with("wasi:"), "unexpected import {name}");
    }
    assert!(ty
        .exports(&engine)
        .any(|(n, _)| n.starts_with("wasi:http/incoming-handler@0.2.")));
}

/// Raw GET (or `method`) through the manifest's components: status, headers, body.
async fn raw(
    c: &HttpComponents,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, Vec<u8>) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = c
        .handle(
            req.body(Body::empty()).unwrap(),
            "127.0.0.1:9".parse().unwrap(),
        )
        .await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn dashboard_serves_its_files_with_etags_and_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _, _store) = load_components(dir.path()).await;

    let (s, h, _) = raw(&c, "GET", "/", &[]).await;
    assert_eq!((s, h["location"].to_str().unwrap()), (302, "/dashboard/"));
    let (s, h, body) = raw(&c, "GET", "/dashboard/", &[]).await;
    assert_eq!(
        (s, h["content-type"].to_str().unwrap()),
        (200, "text/html; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&body).contains("/dashboard/app.js"));
    let (s, h, _) = raw(&c, "GET", "/dashboard/client.js?v=1", &[]).await;
    assert_eq!(
        (s, h["content-type"].to_str().unwrap()),
        (200, "text/javascript; charset=utf-8")
    );
    let etag = h["etag"].to_str().unwrap().to_owned();
    let (s, _, body) = raw(
        &c,
        "GET",
        "/dashboard/client.js",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!((s, body.len()), (304, 0));

    let (s, h, body) = raw(&c, "GET", "/dashboard/../Cargo.toml", &[]).await;
    assert_eq!(
        (s, h["content-type"].to_str().unwrap()),
        (404, "application/json")
    );
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["error"]["code"], "not_found");
    let (s, _, _) = raw(&c, "POST", "/dashboard/", &[]).await;
    assert_eq!(s, 405);
    // The API is still the API.
    let (s, _, _) = raw(&c, "GET", "/health", &[]).await;
    assert_eq!(s, 200);
}
