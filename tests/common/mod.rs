//! Shared by the integration tests: a real host on port 0 with the real components.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use vigil::config::ServeConfig;
use vigil::server::Running;
use vigil_core::auth::{self, Claims, Role};
pub use vigil_redis_test::RedisServer;

/// The secret every test host signs with.
pub const SECRET: &str = "test-secret-0123456789";

/// The repository's `spin.toml`.
pub fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml")
}

/// Where a test host keeps its key-value data: the embedded SQLite store in its data
/// directory, or, with `VIGIL_TEST_BACKEND=redis` (or when the test asks), a real
/// `redis-server` of the test's own, through a Spin runtime config.
#[derive(Clone, Default)]
pub struct TestStore {
    /// The Redis server, if on Redis.
    pub redis: Option<Arc<RedisServer>>,
    /// The runtime config naming it (`--runtime-config`).
    pub runtime_config: Option<PathBuf>,
}

impl TestStore {
    /// The store `VIGIL_TEST_BACKEND` picks (`sqlite`, the default, or `redis`).
    pub fn from_env(data: &Path) -> Self {
        match std::env::var("VIGIL_TEST_BACKEND").as_deref() {
            Ok("redis") => Self::redis(data, Arc::new(RedisServer::start())),
            Ok("sqlite") | Err(_) => Self::default(),
            Ok(other) => panic!("VIGIL_TEST_BACKEND is `sqlite` or `redis`, not `{other}`"),
        }
    }

    /// `server`'s database, named by a runtime config written into `data`.
    pub fn redis(data: &Path, server: Arc<RedisServer>) -> Self {
        std::fs::create_dir_all(data).unwrap();
        let file = data.join("runtime-config.toml");
        let toml = format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            server.url()
        );
        std::fs::write(&file, toml).unwrap();
        Self {
            redis: Some(server),
            runtime_config: Some(file),
        }
    }

    /// Whether this is Redis.
    pub fn is_redis(&self) -> bool {
        self.redis.is_some()
    }
}

/// A running host and where it keeps its data.
pub struct TestHost {
    pub running: Running,
    pub base: String,
    pub data: PathBuf,
    pub store: TestStore,
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
    start_on(data, TestStore::from_env(data), tweak).await
}

/// Starts a host on `data` with its key-value store in `store`.
pub async fn start_on(
    data: &Path,
    store: TestStore,
    tweak: impl FnOnce(&mut ServeConfig),
) -> TestHost {
    let mut config = ServeConfig::new(manifest(), data.to_path_buf());
    config.runtime_config = store.runtime_config.clone();
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
        store,
        _dir: None,
    }
}

/// `n` hosts on one fresh Redis, each with its own data directory (kept for the
/// hosts' life), all with the same configuration.
pub async fn start_cluster(
    n: usize,
    tweak: impl Fn(&mut ServeConfig),
) -> (Arc<RedisServer>, Vec<TestHost>) {
    let server = Arc::new(RedisServer::start());
    let mut hosts = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let store = TestStore::redis(dir.path(), server.clone());
        let mut host = start_on(dir.path(), store, &tweak).await;
        host._dir = Some(dir);
        hosts.push(host);
    }
    (server, hosts)
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

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = reqwest::get(self.url("/metrics")).await.unwrap();
        resp.text().await.unwrap()
    }

    /// One value of `/metrics`: `name` with its labels, e.g.
    /// `vigil_connections{transport="sse"}`; `None` while it is not there.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await;
        let line = text.lines().find(|l| l.split(' ').next() == Some(name))?;
        line.split(' ').nth(1)?.parse().ok()
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

/// Starts the real `vigil` binary on `data` (port 0) and `store`, returning it and
/// its base URL.
pub fn spawn_binary(data: &Path, store: &TestStore) -> (std::process::Child, String) {
    spawn_binary_with(data, store, &[])
}

/// [`spawn_binary`] with more `vigil serve` arguments.
pub fn spawn_binary_with(
    data: &Path,
    store: &TestStore,
    extra: &[&str],
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("serve").args(extra);
    if let Some(rc) = &store.runtime_config {
        cmd.arg("--runtime-config").arg(rc);
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--manifest"])
        .arg(manifest())
        .arg("--data-dir")
        .arg(data)
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

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A deterministic shuffle (xorshift), so a failing order reproduces.
pub fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// A copy of the repository's `spin.toml` in `dir` with some variables' defaults
/// changed (component sources made absolute, so it runs from there).
pub fn manifest_with_defaults(dir: &Path, defaults: &[(&str, &str)]) -> PathBuf {
    let repo = manifest();
    let root = repo.parent().unwrap().canonicalize().unwrap();
    let mut text = std::fs::read_to_string(&repo).unwrap();
    text = text.replace(
        "source = \"target/",
        &format!("source = \"{}/target/", root.display()),
    );
    for (name, value) in defaults {
        let start = text
            .find(&format!("\n{name} = {{ default = "))
            .unwrap_or_else(|| panic!("no variable {name}"));
        let end = start + text[start..].find("}\n").unwrap() + 1;
        text.replace_range(
            start..end,
            &format!("\n{name} = {{ default = \"{value}\" }}"),
        );
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}
