//! Long-polls served on the connection itself, off the HTTP server (issue 14: a parked
//! long-poll holds its socket, its request and its place in the lot, not an HTTP server
//! connection). With raw sockets, what a client sees: a well-formed HTTP/1.1 answer
//! (status, JSON, length, date), then the same connection keeps working for any next
//! request — another long-poll, or one for the HTTP server, sent after the answer or
//! pipelined before it; `Connection: close` is honoured; a client that hangs up while
//! parked frees its place; heads that are too large or malformed get what the HTTP
//! server gives them; silent or slow clients are cut at the header-read timeout.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any step may take on a loaded test machine.
const STEP: Duration = Duration::from_secs(20);

/// One response read off a socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }
}

/// A client connection that reads responses one after the other (keeping what it read
/// past one for the next).
struct Client {
    tcp: TcpStream,
    read: Vec<u8>,
}

impl Client {
    async fn connect(host: &common::TestHost) -> Self {
        let tcp = TcpStream::connect(host.running.addr).await.unwrap();
        Self {
            tcp,
            read: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.tcp.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// Reads more; false at the connection's end.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        match tokio::time::timeout(STEP, self.tcp.read(&mut buf)).await {
            Err(_) => panic!("no answer; read so far: {:?}", self.text()),
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.read.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.read).into_owned()
    }

    /// The next response, which has a `content-length` and a JSON body.
    async fn answer(&mut self) -> Answer {
        let end = loop {
            if let Some(at) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(self.fill().await, "closed before a head: {:?}", self.text());
        };
        let head = String::from_utf8(self.read[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{head}");
        let status = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        self.read.drain(..end);
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
        let body = match chunked {
            true => self.chunked_body().await,
            false => {
                let length = headers.iter().find(|(n, _)| n == "content-length");
                let length = length.unwrap_or_else(|| panic!("framed: {head}"));
                let length: usize = length.1.parse().unwrap();
                self.bytes(length).await
            }
        };
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The next `n` bytes.
    async fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.read.len() < n {
            assert!(self.fill().await, "closed inside a body: {:?}", self.text());
        }
        self.read.drain(..n).collect()
    }

    /// A chunked body, its chunks joined.
    async fn chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = loop {
                if let Some(at) = self.read.windows(2).position(|w| w == b"\r\n") {
                    break self.bytes(at + 2).await;
                }
                assert!(self.fill().await, "closed inside a body: {:?}", self.text());
            };
            let size = String::from_utf8(line[..line.len() - 2].to_vec()).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let chunk = self.bytes(size + 2).await;
            if size == 0 {
                return body;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }

    /// A connection the HTTP server has: its first request was one for it.
    async fn of_the_http_server(host: &common::TestHost) -> Self {
        let mut client = Self::connect(host).await;
        client.send("GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert_eq!(client.answer().await.status, 200);
        client
    }

    /// Waits for the server to close the connection; how long that took.
    async fn closed(&mut self) -> Duration {
        let started = Instant::now();
        while self.fill().await {}
        started.elapsed()
    }
}

fn get(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n{extra}\r\n",
        common::admin()
    )
}

async fn parked(host: &common::TestHost) -> u64 {
    host.metric("vigil_long_polls_parked").await.unwrap() as u64
}

async fn until_parked(host: &common::TestHost, n: u64) {
    let deadline = Instant::now() + STEP;
    while parked(host).await != n {
        assert!(Instant::now() < deadline, "parked: {}", parked(host).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn submit(host: &common::TestHost) -> String {
    let (s, job) = host
        .post("/api/admin/celery/jobs/lean.job", &common::admin(), "{}")
        .await;
    assert_eq!(s, 202, "{job}");
    job["job_id"].as_str().unwrap().to_owned()
}

fn no_rate_limit() -> impl FnOnce(&mut vigil::config::ServeConfig) {
    |c| c.rest_rate_per_sec = 0
}

#[tokio::test]
async fn a_keep_alive_connection_serves_any_request_after_a_parked_answer() {
    let host = common::start_with(no_rate_limit()).await;
    let id = submit(&host).await;
    let mut client = Client::connect(&host).await;
    client
        .send(&get(
            &format!("/api/admin/celery/jobs/{id}/wait?timeout=120"),
            "",
        ))
        .await;
    until_parked(&host, 1).await;
    let done = json!({"type": "task-succeeded", "uuid": id, "result": "7"});
    assert_eq!(host.ingest(&done.to_string()).await.0, 202);
    let a = client.answer().await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("completed"))
    );
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert!(
        a.header("date").is_some_and(|d| d.ends_with(" GMT")),
        "{a:?}"
    );
    assert_eq!(a.header("connection"), None, "kept alive: {a:?}");
    assert_eq!(parked(&host).await, 0);

    // A second long-poll on the same connection: parked again, answered at its timeout.
    let started = Instant::now();
    client
        .send(&get("/api/v1/events?timeout=1&topics=nothing", ""))
        .await;
    let a = client.answer().await;
    assert_eq!((a.status, &a.body["events"]), (200, &json!([])), "{a:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited");

    // Then a request for the HTTP server, on the same connection.
    client.send(&get("/api/v1/tasks?limit=1", "")).await;
    let a = client.answer().await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body["tasks"].is_array(), "{a:?}");
    client.send(&get("/api/v1/tasks?limit=1", "")).await;
    assert_eq!(client.answer().await.status, 200, "still the HTTP server's");
}

#[tokio::test]
async fn requests_pipelined_behind_a_parked_long_poll_are_answered_after_it() {
    let host = common::start_with(no_rate_limit()).await;
    let mut client = Client::connect(&host).await;
    let poll = get("/api/v1/events?timeout=2&topics=nothing", "");
    // The long-poll, a second one, then half of a request for the HTTP server.
    let tasks = get("/api/v1/tasks?limit=1", "");
    let (first_half, second_half) = tasks.split_at(20);
    client.send(&format!("{poll}{poll}{first_half}")).await;
    until_parked(&host, 1).await;
    client.send(second_half).await;
    for _ in 0..2 {
        let a = client.answer().await;
        assert_eq!((a.status, &a.body["events"]), (200, &json!([])), "{a:?}");
    }
    let a = client.answer().await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body["tasks"].is_array(), "{a:?}");
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let host = common::start_with(no_rate_limit()).await;
    let mut client = Client::connect(&host).await;
    client
        .send(&get(
            "/api/v1/events?timeout=1&topics=nothing",
            "connection: close\r\n",
        ))
        .await;
    let a = client.answer().await;
    assert_eq!((a.status, a.header("connection")), (200, Some("close")));
    client.closed().await;
}

#[tokio::test]
async fn answers_and_refusals_are_the_same_as_through_the_http_server() {
    let host = common::start().await;
    let mut http_server = Client::of_the_http_server(&host).await;
    let no_token = "GET /api/v1/events?timeout=5 HTTP/1.1\r\nhost: x\r\n\r\n".to_owned();
    let bad_cursor = get("/api/v1/events?since=abc&timeout=5", "");
    let answered = get("/api/v1/events?since=0&timeout=1", "");
    for (req, status) in [(no_token, 401), (bad_cursor, 422), (answered, 200)] {
        let mut lean = Client::connect(&host).await;
        lean.send(&req).await;
        let a = lean.answer().await;
        http_server.send(&req).await;
        let b = http_server.answer().await;
        assert_eq!((a.status, &a.body), (status, &b.body), "{req}");
        assert_eq!(b.status, status);
        assert_eq!(a.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_pipeline_frees_its_place() {
    let host = common::start_with(no_rate_limit()).await;
    let mut client = Client::connect(&host).await;
    client
        .send(&format!(
            "{}GET /api/v1/ta",
            get("/api/v1/events?timeout=120", "")
        ))
        .await;
    until_parked(&host, 1).await;
    drop(client);
    until_parked(&host, 0).await;
}

#[tokio::test]
async fn heads_too_large_or_malformed_get_what_the_http_server_gives_them() {
    let host = common::start_with(no_rate_limit()).await;
    // Past the 16 KiB taken off the connection: a long-poll the HTTP server parks.
    let mut client = Client::connect(&host).await;
    let pad = format!("x-pad: {}\r\n", "p".repeat(20 * 1024));
    client
        .send(&get("/api/v1/events?timeout=1&topics=nothing", &pad))
        .await;
    let a = client.answer().await;
    assert_eq!((a.status, &a.body["events"]), (200, &json!([])), "{a:?}");
    // A URI past the host's limit: its JSON 414.
    let mut client = Client::connect(&host).await;
    let long = format!("/api/v1/events?timeout=5&x={}", "u".repeat(17 * 1024));
    client.send(&get(&long, "")).await;
    let a = client.answer().await;
    assert_eq!(
        (a.status, a.body["error"]["status"].as_u64()),
        (414, Some(414))
    );
    // A malformed header line: the same answer as for any other request.
    let mut statuses = Vec::new();
    for path in ["/api/v1/events?timeout=5", "/api/v1/tasks"] {
        let mut client = Client::connect(&host).await;
        client
            .send(&format!(
                "GET {path} HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n"
            ))
            .await;
        client.closed().await;
        let text = client.text();
        statuses.push(text.split(' ').nth(1).unwrap_or("").to_owned());
    }
    assert_eq!(statuses[0], statuses[1], "{statuses:?}");
    assert_eq!(statuses[0], "400");
}

#[tokio::test]
async fn slow_and_idle_long_poll_connections_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_secs(1);
    let host = common::start_with(|c| {
        c.connections.header_read_timeout = timeout;
        c.rest_rate_per_sec = 0;
    })
    .await;
    let within = timeout * 2 + Duration::from_secs(2);
    // Half a long-poll's head, then nothing.
    let mut half = Client::connect(&host).await;
    half.send("GET /api/v1/events?timeout=60 HTTP/1.1\r\nhost: x\r\n")
        .await;
    // A long-poll answered, then no next request.
    let mut idle = Client::connect(&host).await;
    idle.send(&get("/api/v1/events?timeout=1&topics=nothing", ""))
        .await;
    let a = idle.answer().await;
    assert_eq!(a.status, 200, "{a:?}");
    let took = half.closed().await;
    assert!(took < within, "half a head: {took:?}");
    let took = idle.closed().await;
    assert!(took < within, "idle after an answer: {took:?}");
}
