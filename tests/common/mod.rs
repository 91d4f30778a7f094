//! Shared by the integration tests: a real host on port 0 with the real components.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use vigil::config::ServeConfig;
use vigil::server::Running;
use vigil_core::auth::{self, Claims, Role};

/// The secret every test host signs with.
pub const SECRET: &str = "test-secret-0123456789";

/// The repository's `spin.toml`.
pub fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml")
}

/// A running host and where it keeps its data.
pub struct TestHost {
    pub running: Running,
    pub base: String,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// Starts a host with a fresh data directory.
pub async fn start() -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    let mut host = start_in(dir.path()).await;
    host._dir = Some(dir);
    host
}

/// Starts a host with a fresh data directory and a changed configuration.
pub async fn start_with(tweak: impl FnOnce(&mut ServeConfig)) -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    let mut host = start_configured(dir.path(), tweak).await;
    host._dir = Some(dir);
    host
}

/// Starts a host on `data`.
pub async fn start_in(data: &Path) -> TestHost {
    start_configured(data, |_| {}).await
}

async fn start_configured(data: &Path, tweak: impl FnOnce(&mut ServeConfig)) -> TestHost {
    let mut config = ServeConfig::new(manifest(), data.to_path_buf());
    tweak(&mut config);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.jwt_secret = Some(SECRET.into());
    let running = vigil::server::start(config, std::future::pending())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    TestHost {
        running,
        base,
        data: data.to_path_buf(),
        _dir: None,
    }
}

/// A token for `sub` with `role`, valid for an hour (or expired, with `ttl` < 0).
pub fn token_with(sub: &str, role: Role, ttl: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        exp: (now + ttl) as u64,
        ..Claims::new(sub, role, now as u64, 0)
    };
    auth::sign(&claims, secret.as_bytes())
}

pub fn token(sub: &str, role: Role) -> String {
    token_with(sub, role, 3600, SECRET)
}

pub fn producer() -> String {
    token("worker-1", Role::Producer)
}

pub fn admin() -> String {
    token("root", Role::Admin)
}

impl TestHost {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` to the ingest API as a producer; returns status and JSON body.
    pub async fn ingest(&self, body: &str) -> (u16, Value) {
        send(
            reqwest::Client::new()
                .post(self.url("/api/v1/events"))
                .bearer_auth(producer())
                .body(body.to_owned()),
        )
        .await
    }

    /// GETs `path` as admin.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(
            reqwest::Client::new()
                .get(self.url(path))
                .bearer_auth(admin()),
        )
        .await
    }
}

/// Sends a request; returns status and JSON body (every response of Vigil is JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    assert_eq!(
        ctype.as_deref(),
        Some("application/json"),
        "status {status}, body {text}"
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// A minimal SSE reader over a streaming response.
pub struct SseClient {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
    /// The `initial_data` snapshot of a fresh connection.
    pub initial: serde_json::Value,
}

impl SseClient {
    /// Connects with a token in the header and waits for the `connected` and
    /// `initial_data` events (a fresh connection's snapshot, kept in `initial`).
    pub async fn connect(url: &str, token: &str) -> Self {
        let resp = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let mut c = Self::from_response(resp).await;
        let snapshot = c.next().await;
        assert_eq!(snapshot.event, "initial_data");
        c.initial = serde_json::from_str(&snapshot.data).unwrap();
        c
    }

    /// Reads an already opened stream (e.g. a resumed one, which gets no snapshot),
    /// after its `connected` event.
    pub async fn from_response(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut c = Self {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
            initial: serde_json::Value::Null,
        };
        let hello = c.next().await;
        assert_eq!(hello.event, "connected");
        c
    }

    /// The next message (comments skipped); panics after 10 s.
    pub async fn next(&mut self) -> SseMessage {
        tokio::time::timeout(Duration::from_secs(10), self.next_inner())
            .await
            .expect("SSE message in time")
    }

    async fn next_inner(&mut self) -> SseMessage {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut msg = SseMessage {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        msg.id = Some(v.trim().into());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        msg.event = v.trim().into();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        msg.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return msg;
                }
                continue;
            }
            let chunk = self.stream.next().await.expect("stream open").unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

impl TestHost {
    /// POSTs `body` to `path` with `token`.
    pub async fn post(&self, path: &str, token: &str, body: &str) -> (u16, Value) {
        send(
            reqwest::Client::new()
                .post(self.url(path))
                .bearer_auth(token)
                .body(body.to_owned()),
        )
        .await
    }

    /// GETs `path` with `token`.
    pub async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        send(
            reqwest::Client::new()
                .get(self.url(path))
                .bearer_auth(token),
        )
        .await
    }
}

/// A child process killed when dropped, so a failed test leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real `vigil` binary on `data` (port 0), returning it and its base URL.
pub fn spawn_binary(data: &Path) -> (std::process::Child, String) {
    spawn_binary_with(data, &[])
}

/// [`spawn_binary`] with more `vigil serve` arguments.
pub fn spawn_binary_with(data: &Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(manifest())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("VIGIL_JWT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("vigil listening on ")
        .expect("listening line")
        .to_owned();
    (child, base)
}
