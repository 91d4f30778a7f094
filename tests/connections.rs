//! Limits on every connection, with real sockets and real time: a silent, a slowloris
//! and an idle keep-alive connection are closed after the header-read timeout; past
//! the connection cap the server still answers (`/health` 200, the rest a JSON 503);
//! a push client that stops reading loses its socket after the write timeout.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads and discards until the server closes `tcp` (EOF or reset); how long that
/// took, or a panic after `within`.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => panic!("still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_secs(1);
    let host = common::start_with(|c| c.connections.header_read_timeout = timeout).await;
    let addr = host.running.addr;
    let within = timeout + Duration::from_secs(2);

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let slowloris = async {
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(within, slowloris).await;
    for (name, tcp) in [
        ("silent", &mut silent),
        ("slowloris", &mut slow),
        ("idle keep-alive", &mut idle),
    ] {
        let took = read_until_closed(tcp, within).await;
        println!("{name}: closed after {took:?}");
    }
    assert_eq!(
        reqwest::get(host.url("/health")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn past_the_cap_the_server_still_answers_and_refuses_cleanly() {
    const CAP: usize = 20;
    let host = common::start_with(|c| {
        c.connections.max_connections = CAP;
        c.connections.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(TcpStream::connect(host.running.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // all accepted
    let raw = |path: &'static str| async move {
        let mut tcp = TcpStream::connect(host.running.addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut out))
            .await
            .expect("answered and closed in time")
            .unwrap();
        out
    };
    let health = raw("/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    for path in ["/ready", "/api/v1/tasks"] {
        let refused = raw(path).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("retry-after: 1"), "{refused}");
        let body: serde_json::Value =
            serde_json::from_str(refused.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
    }
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        host.get("/api/v1/tasks").await.0,
        200,
        "capacity comes back"
    );
}

#[tokio::test]
async fn a_push_client_that_stops_reading_loses_its_socket_after_the_write_timeout() {
    let write_timeout = Duration::from_secs(2);
    let host = common::start_with(|c| {
        c.connections.write_timeout = write_timeout;
        // Only the write timeout may close it here, not the heartbeat check.
        c.push.heartbeat = Duration::from_secs(600);
    })
    .await;
    // A tiny receive buffer, so the server's writes really stall (loopback's default
    // buffers would take the few MB below, and only the heartbeat check would close it).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(host.running.addr).await.unwrap();
    let req = format!(
        "GET /ws?access_token={} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        common::admin()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    // The client never reads again; producers keep the server writing to it until the
    // server lets it go (the gauge drops), which must be well before the heartbeat check
    // could (turned off here).
    let big = "x".repeat(4000);
    let started = Instant::now();
    while websocket_gauge(&host).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sent = 0;
    while websocket_gauge(&host).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still served after 30 s of writes it does not read"
        );
        let batch: Vec<serde_json::Value> = (0..200)
            .map(|i| serde_json::json!({"type": "task-received", "uuid": format!("t{sent}-{i}"), "name": big}))
            .collect();
        host.ingest(&serde_json::Value::Array(batch).to_string())
            .await;
        sent += 1;
    }
    println!("let go after {:?} of writes", started.elapsed());
    // And its socket is really gone: what was buffered, then the end.
    read_until_closed(&mut tcp, write_timeout + Duration::from_secs(10)).await;
}

/// Open native WebSocket connections, from `/metrics`.
async fn websocket_gauge(host: &common::TestHost) -> u64 {
    let value = host
        .metric("vigil_connections{transport=\"websocket\"}")
        .await;
    value.map_or(0, |n| n as u64)
}
