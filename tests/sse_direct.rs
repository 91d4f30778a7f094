//! `GET /events` as a connection's first request is served on the connection itself,
//! off the HTTP server; everything else on the same port still goes through it. With
//! real sockets: the direct stream's head, body and end; its refusals (the same JSON
//! errors and statuses); gzip; an SSE request second on a keep-alive connection and one
//! whose head is too big to take directly (both through the HTTP server); and a
//! connection that goes away (the connection gauge drops).

mod common;

use std::io::Read;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any step may take on a loaded machine.
const STEP: Duration = Duration::from_secs(10);

/// Reads from `tcp` until `done` holds for what was read (or the connection ends).
async fn read_until(tcp: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&all) {
        match tokio::time::timeout(STEP, tcp.read(&mut buf)).await {
            Err(_) => panic!("timed out; read so far: {}", String::from_utf8_lossy(&all)),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn send(host: &common::TestHost, req: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(host.running.addr).await.unwrap();
    tcp.write_all(req.as_bytes()).await.unwrap();
    tcp
}

#[tokio::test]
async fn a_first_request_is_streamed_directly_until_the_client_leaves() {
    let host = common::start().await;
    let req = format!(
        "GET /events?access_token={} HTTP/1.1\r\nHost: x\r\n\r\n",
        common::admin()
    );
    let mut tcp = send(&host, &req).await;
    let got = read_until(&mut tcp, |b| contains(b, "event: initial_data")).await;
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        !head.contains("transfer-encoding"),
        "body delimited by the end: {head}"
    );
    assert!(body.starts_with("event: connected\n"), "{body}");
    assert_eq!(sse_gauge(&host).await, 1);
    drop(tcp);
    let started = std::time::Instant::now();
    while sse_gauge(&host).await != 0 {
        assert!(started.elapsed() < STEP, "the stream outlived its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn refusals_are_json_with_their_status_then_the_connection_closes() {
    let host = common::start().await;
    for (req, status) in [
        ("GET /events HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), "401"),
        (
            format!(
                "GET /events?since=abc&access_token={} HTTP/1.1\r\n\r\n",
                common::admin()
            ),
            "400",
        ),
        (
            format!(
                "GET /events?access_token={} HTTP/1.1\r\n\r\n",
                common::producer()
            ),
            "403",
        ),
    ] {
        let mut tcp = send(&host, &req).await;
        let got = read_until(&mut tcp, |_| false).await; // until closed
        let text = String::from_utf8_lossy(&got);
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"]["message"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn gzip_leaves_the_head_plain_and_the_stream_decodes_as_it_comes() {
    let host = common::start().await;
    let req = format!(
        "GET /events?access_token={} HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
        common::admin()
    );
    let mut tcp = send(&host, &req).await;
    let decoded = |b: &[u8]| {
        let at = b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        let mut text = String::new();
        if let Some(at) = at {
            let _ = flate2::read::GzDecoder::new(&b[at..]).read_to_string(&mut text);
        }
        text
    };
    let got = read_until(&mut tcp, |b| decoded(b).contains("initial_data")).await;
    assert!(contains(&got, "content-encoding: gzip\r\n"));
    assert!(decoded(&got).starts_with("event: connected\n"));
}

#[tokio::test]
async fn a_second_request_and_an_oversized_head_go_through_the_http_server() {
    let host = common::start().await;
    let admin = common::admin();
    let events = format!("GET /events?access_token={admin} HTTP/1.1\r\nHost: x\r\n");
    // Second on a keep-alive connection: after /health's answer, a chunked SSE body.
    let mut tcp = send(&host, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    read_until(&mut tcp, |b| contains(b, "\"ok\"")).await;
    tcp.write_all(format!("{events}\r\n").as_bytes())
        .await
        .unwrap();
    let got = read_until(&mut tcp, |b| contains(b, "event: initial_data")).await;
    assert!(contains(&got, "HTTP/1.1 200 OK"));
    assert!(contains(&got, "transfer-encoding: chunked"));
    // A head past what is taken directly (16 KiB), under the server's limit.
    let big = "a".repeat(20 * 1024);
    let mut tcp = send(&host, &format!("{events}X-Big: {big}\r\n\r\n")).await;
    let got = read_until(&mut tcp, |b| contains(b, "event: initial_data")).await;
    assert!(contains(&got, "HTTP/1.1 200 OK"));
    assert!(contains(&got, "transfer-encoding: chunked"));
}

/// Open SSE connections, from `/metrics`.
async fn sse_gauge(host: &common::TestHost) -> u64 {
    let value = host.metric("vigil_connections{transport=\"sse\"}").await;
    value.expect("the SSE gauge") as u64
}
