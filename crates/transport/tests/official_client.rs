//! The Engine.IO / Socket.IO layer against the official `socket.io-client` v4 (node,
//! `tests/socketio/eio/*.test.js`), with a small application of its own: no Vigil,
//! just the protocol — both transports, the upgrade, reconnection, heartbeats,
//! acknowledgements, binary attachments both ways, namespaces, refusals and server
//! disconnects.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use vigil_transport::conn::payload::Payload;
use vigil_transport::conn::Outgoing;
use vigil_transport::eio::{Config, Event, Handler, Refusal, Server, SocketRef};

/// The test application: tokens `good` and `admin` may join `/`, only `admin` may join
/// `/admin`, and a few events exercise the protocol.
struct App;

impl Handler for App {
    type Socket = ();

    async fn connect(&self, socket: &SocketRef, auth: Option<Value>) -> Result<(), Refusal> {
        let token = auth
            .as_ref()
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str);
        let refused = |message: &str| Refusal {
            message: message.to_owned(),
            data: Some(json!({ "ns": socket.ns() })),
        };
        match (socket.ns(), token) {
            ("/", Some("good" | "admin")) | ("/admin", Some("admin")) => {
                // `auth.burst`: that many items, queued as soon as the socket joins.
                let n = auth.as_ref().and_then(|a| a["burst"].as_u64()).unwrap_or(0);
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    burst(&socket, n);
                });
                Ok(())
            }
            ("/" | "/admin", _) => Err(refused("401 unauthorized")),
            _ => Err(Refusal {
                message: "Invalid namespace".into(),
                data: None,
            }),
        }
    }

    async fn event(&self, socket: SocketRef, _: Arc<()>, event: Event) {
        let arg = event.args.first().cloned().unwrap_or(Value::Null);
        let answer = match event.name.as_str() {
            "echo" => arg,
            "subscribe" => {
                let _ = socket.emit(
                    "subscribed",
                    &json!({ "room": arg["room"], "ns": socket.ns() }),
                );
                json!({ "success": true, "room": arg["room"] })
            }
            "burst" => json!({ "queued": burst(&socket, arg["n"].as_u64().unwrap_or(0)) }),
            "binary" => {
                let bytes = event.attachments.first().cloned().unwrap_or_default();
                let size = bytes.len();
                let payload = Arc::new(Payload::new("binary-back".into(), 1, bytes, true));
                let _ = socket.queue().push(Outgoing::Payload {
                    ns: socket.slot(),
                    payload,
                });
                json!({ "size": size, "arg": arg })
            }
            "close-me" => {
                let _ = socket.disconnect();
                Value::Null
            }
            "slow" => {
                let _ = socket.emit("closing", &json!({ "reason": "slow consumer" }));
                socket.queue().close("slow consumer");
                Value::Null
            }
            other => json!({ "error": format!("unknown event {other}") }),
        };
        if let Some(ack) = event.ack {
            let _ = ack.send(&answer);
        }
    }

    fn disconnect(&self, _: &SocketRef, _: &(), _: &str) {}
}

/// Queues `n` items `{i, ns}` for `socket`, as the hub would; how many fitted.
fn burst(socket: &SocketRef, n: u64) -> u64 {
    let mut queued = 0;
    for i in 0..n {
        let body = Bytes::from(json!({ "i": i, "ns": socket.ns() }).to_string());
        let payload = Arc::new(Payload::new("item".into(), i + 1, body, false));
        let item = Outgoing::Payload {
            ns: socket.slot(),
            payload,
        };
        if socket.queue().push(item).is_ok() {
            queued += 1;
        }
    }
    queued
}

async fn serve(
    server: Arc<Server<App>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/socket.io/" {
        let mut not_found = Response::new(Full::default());
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return Ok(not_found);
    }
    Ok(server.handle(req).await)
}

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/socketio")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_speaks_with_this_server() {
    let dir = node_dir();
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "run `npm ci` in tests/socketio first (scripts/test does)"
    );
    let config = Config {
        // Short, so the tests see several heartbeats on both transports.
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(400),
        queue_capacity: 4096,
        ..Config::default()
    };
    let server = Server::new(App, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let server = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| serve(server.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .args([
            "--test",
            "--test-reporter=spec",
            "--test-force-exit",
            "eio/",
        ])
        .env("EIO_URL", &url)
        .output()
        .await
        .expect("node on PATH");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed: {}", out.status);
}
