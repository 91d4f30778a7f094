//! Socket.IO: the official `socket.io-client` v4 (node, `tests/socketio/*.test.js`)
//! against the real `vigil` binary, plus the wire protocol spoken by hand over HTTP
//! long-polling, which needs no node.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::Value;
use vigil_core::auth::Role;

/// Where the node tests and their `node_modules` (from `npm ci`, run by `scripts/test`) live.
fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/socketio")
}

/// The host binary on port 0; killed when dropped.
struct Host {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
    _store: common::TestStore,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_host() -> Host {
    let data = tempfile::tempdir().unwrap();
    let store = common::TestStore::from_env(data.path());
    let (child, base) = common::spawn_binary(data.path(), &store);
    Host {
        child,
        base,
        _data: data,
        _store: store,
    }
}

#[test]
fn official_client_suite_passes() {
    let dir = node_dir();
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "run `npm ci` in tests/socketio first (scripts/test does)"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    let host = spawn_host();
    let out = Command::new("node")
        .current_dir(&dir)
        // One file at a time: each file's sockets see the others' events otherwise.
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        // A failed test that leaves a client open must not keep node running forever.
        .arg("--test-force-exit")
        .args(&files)
        .env("VIGIL_URL", &host.base)
        .env("VIGIL_ADMIN_TOKEN", common::admin())
        .env("VIGIL_VIEWER_TOKEN", common::token("alice", Role::Viewer))
        .env("VIGIL_PRODUCER_TOKEN", common::producer())
        // To mint short-lived tokens for the expiry and refresh tests.
        .env("VIGIL_JWT_SECRET", common::SECRET)
        .env(
            "VIGIL_EXPIRED_TOKEN",
            common::token_with("root", Role::Admin, -60, common::SECRET),
        )
        .output()
        .expect("node on PATH");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed: {}", out.status);
}

/// A hand-driven Engine.IO v4 long-polling session.
struct Polling {
    client: reqwest::Client,
    url: String,
}

impl Polling {
    /// Opens a session and returns it with the handshake.
    async fn open(base: &str) -> (Self, Value) {
        let client = reqwest::Client::new();
        let url = format!("{base}/socket.io/?EIO=4&transport=polling");
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        let handshake: Value =
            serde_json::from_str(body.strip_prefix('0').expect("open packet")).unwrap();
        let url = format!("{url}&sid={}", handshake["sid"].as_str().unwrap());
        (Self { client, url }, handshake)
    }

    async fn send(&self, packet: &str) {
        let resp = self.client.post(&self.url).body(packet.to_owned());
        assert_eq!(resp.send().await.unwrap().text().await.unwrap(), "ok");
    }

    /// The packets of the next poll (Engine.IO separates them with 0x1e).
    async fn poll(&self) -> Vec<String> {
        let body = self.client.get(&self.url).send().await.unwrap();
        let text = body.text().await.unwrap();
        text.split('\u{1e}').map(str::to_owned).collect()
    }

    /// Polls until a packet starts with `prefix`; returns the rest of it.
    async fn until(&self, prefix: &str) -> String {
        for _ in 0..20 {
            if let Some(p) = self
                .poll()
                .await
                .into_iter()
                .find(|p| p.starts_with(prefix))
            {
                return p[prefix.len()..].to_owned();
            }
        }
        panic!("no packet starting with {prefix}");
    }
}

#[tokio::test]
async fn socket_io_is_served_before_the_component_fallback() {
    let host = common::start().await;
    let (_, handshake) = Polling::open(&host.base).await;
    assert!(handshake["sid"].is_string());
    assert_eq!(handshake["upgrades"], serde_json::json!(["websocket"]));
    // Other paths still reach the components.
    assert_eq!(host.get("/health").await.0, 200);
}

#[tokio::test]
async fn refusals_are_connect_errors_with_a_reason() {
    let host = common::start().await;
    let viewer = common::token("alice", Role::Viewer);
    let (s, _) = Polling::open(&host.base).await;
    s.send(&format!(r#"40/ws/celery/tasks,{{"token":"{viewer}"}}"#))
        .await;
    let err: Value = serde_json::from_str(&s.until("44/ws/celery/tasks,").await).unwrap();
    assert_eq!(
        err["message"],
        "403 forbidden: namespace /ws/celery/tasks needs role admin"
    );
    let (s, _) = Polling::open(&host.base).await;
    s.send(r#"40{"token":"garbage"}"#).await;
    let err: Value = serde_json::from_str(&s.until("44").await).unwrap();
    assert_eq!(err["message"], "401 unauthorized: malformed token");
}

#[tokio::test]
async fn subscribe_then_task_update_over_raw_polling() {
    let host = common::start().await;
    let (s, _) = Polling::open(&host.base).await;
    let ns = "/ws/celery/tasks,";
    s.send(&format!(r#"40{ns}{{"token":"{}"}}"#, common::admin()))
        .await;
    s.until(&format!("40{ns}")).await;
    s.send(&format!(
        r#"42{ns}7["subscribe",{{"room":"celery:tasks"}}]"#
    ))
    .await;
    let ack: Value = serde_json::from_str(&s.until(&format!("43{ns}7")).await).unwrap();
    assert_eq!(ack[0]["success"], true);

    let (status, _) = host
        .ingest(r#"{"type":"task-received","uuid":"raw-1","name":"etl","routing_key":"q1"}"#)
        .await;
    assert_eq!(status, 202);
    let event: Value = serde_json::from_str(&s.until(&format!("42{ns}")).await).unwrap();
    let event = if event[0] == "subscribed" {
        serde_json::from_str(&s.until(&format!("42{ns}")).await).unwrap()
    } else {
        event
    };
    assert_eq!(event[0], "task_update");
    assert_eq!(event[1]["type"], "task_update");
    assert_eq!(event[1]["seq"], 1);
    assert_eq!(event[1]["data"]["id"], "raw-1");
    assert_eq!(event[1]["data"]["queue"], "q1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_bigger_than_the_socket_buffer_arrives_whole() {
    // 600 emits at once to a client that reads only afterwards: they wait in the
    // session's queue (1024) rather than cost the socket its connection.
    let host = common::start_with(|c| c.push.rate_per_sec = 0).await;
    let s = admin_in_tasks_room(&host).await;
    assert_eq!(host.ingest(&task_events("burst", 600)).await.0, 202);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // not reading yet

    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        for p in s.poll().await {
            assert_ne!(p, "41", "disconnected after {} events", seen.len());
            let Some(ev) = p.strip_prefix("42") else {
                continue;
            };
            let ev: Value = serde_json::from_str(ev).unwrap();
            assert_ne!(ev[0], "closing", "closed: {}", ev[1]);
            if ev[0] == "task_update" {
                seen.insert(ev[1]["data"]["id"].as_str().unwrap().to_owned());
            }
        }
        if seen.len() == 600 {
            return;
        }
    }
    panic!("{} of 600 events arrived", seen.len());
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_a_reason() {
    // Unlimited rate, so every event is an emit: the session's queue (64) fills, then
    // the degraded socket's held updates (100).
    let host = common::start_with(|c| {
        c.push.rate_per_sec = 0;
        c.push.queue_capacity = 64;
        c.push.max_held = 100;
    })
    .await;
    let s = admin_in_tasks_room(&host).await;
    assert_eq!(host.ingest(&task_events("slow", 400)).await.0, 202);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // not reading

    let (mut closing, mut received) = (None, 0);
    for _ in 0..50 {
        for p in s.poll().await {
            if let Some(ev) = p.strip_prefix("42") {
                let ev: Value = serde_json::from_str(ev).unwrap();
                match ev[0].as_str() {
                    Some("task_update") => received += 1,
                    Some("closing") => closing = Some(ev[1]["reason"].clone()),
                    _ => {}
                }
            } else if p == "41" {
                let reason = closing.expect("`closing` before the disconnect");
                assert!(reason.as_str().unwrap().starts_with("slow consumer"));
                assert!(received < 400, "some were not sent");
                return;
            }
        }
    }
    panic!("not disconnected ({received} received, closing {closing:?})");
}

/// A Socket.IO polling session of an admin in `celery:tasks` (the join acknowledged).
async fn admin_in_tasks_room(host: &common::TestHost) -> Polling {
    let (s, _) = Polling::open(&host.base).await;
    s.send(&format!(r#"40{{"token":"{}"}}"#, common::admin()))
        .await;
    s.until("40").await;
    s.send(r#"427["subscribe",{"room":"celery:tasks"}]"#).await;
    s.until("437").await;
    s
}

/// An ingest body of `n` `task-received` events for tasks `<prefix>-0`, `<prefix>-1`, ….
fn task_events(prefix: &str, n: usize) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"type":"task-received","uuid":format!("{prefix}-{i}"),"name":"x"}))
        .collect();
    serde_json::to_string(&events).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_socketio_clients_why_before_closing() {
    // The seeds' clients show `closing`'s reason and reconnect elsewhere: it must leave
    // before the session closes, not race it.
    let host = common::start().await;
    let s = admin_in_tasks_room(&host).await;
    let waiting = tokio::spawn(async move { s.poll().await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // the poll is held
    let stopping = tokio::spawn(host.running.stop());
    let packets = waiting.await.unwrap();
    let closing = packets
        .iter()
        .filter_map(|p| p.strip_prefix("42"))
        .map(|p| serde_json::from_str::<Value>(p).unwrap())
        .find(|ev| ev[0] == "closing");
    let closing = closing.unwrap_or_else(|| panic!("no `closing` in {packets:?}"));
    assert!(
        closing[1]["reason"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{closing}"
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .unwrap()
        .unwrap();
}
