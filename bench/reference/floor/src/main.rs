//! `vigil-bench-floor`: the floor of `scripts/bench`'s Socket.IO push benchmark, the
//! least CPU any server must spend per delivery on this machine, measured with the
//! benchmark's own clients, protocol and contract. A lower bound, not a product.
//!
//! Just enough Engine.IO v4 / Socket.IO v5 over WebSocket: the open packet, the
//! server's heartbeat, CONNECT to `/` with an HS256 JWT in `auth.token` (refused with
//! CONNECT_ERROR), `subscribe {room}` → `subscribed {room}`, and `POST /publish`
//! `[{room, event, data}]` as the Node reference takes it. Each event is encoded once
//! into a complete WebSocket frame whose bytes are queued for every socket in the room;
//! each socket's writer sends all it has queued with one `writev`.
//!
//! Skipped: the polling transport and upgrades, acks, binary packets, namespaces
//! other than `/`, leaving rooms (except by disconnecting), compression, and the
//! limits and back-pressure policy a real server needs (a full queue drops frames).
//!
//! Environment: PORT (0 = any free port), JWT_SECRET. Prints `listening on <port>`.

mod conn;
mod frame;
mod jwt;

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use conn::Hub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().map_err(std::io::Error::other)?,
        Err(_) => 0,
    };
    let secret = std::env::var("JWT_SECRET").unwrap_or_default();
    let hub = Arc::new(Hub::new(secret.into_bytes()));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    println!("listening on {}", listener.local_addr()?.port());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("floor: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let hub = hub.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(hub.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

async fn handle(hub: Arc<Hub>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    let path = req.uri().path();
    Ok(if req.method() == Method::POST && path == "/publish" {
        publish(&hub, req).await
    } else if req.method() == Method::GET && matches!(path, "/socket.io/" | "/socket.io") {
        upgrade(hub, req)
    } else {
        respond(StatusCode::NOT_FOUND, "")
    })
}

/// `POST /publish`: `{room, event, data}` or an array of them; 202 `{"accepted": n}`.
async fn publish(hub: &Hub, req: Request<Incoming>) -> Answer {
    let Ok(body) = req.into_body().collect().await else {
        return respond(StatusCode::BAD_REQUEST, "");
    };
    let items = match serde_json::from_slice(&body.to_bytes()) {
        Ok(Value::Array(items)) => items,
        Ok(item) => vec![item],
        Err(_) => return respond(StatusCode::BAD_REQUEST, ""),
    };
    for item in &items {
        let room = item.get("room").and_then(Value::as_str);
        let event = item.get("event").and_then(Value::as_str);
        if let (Some(room), Some(event)) = (room, event) {
            let data = item.get("data").unwrap_or(&Value::Null);
            hub.publish(room, &event_frame(event, data));
        }
    }
    let accepted = json!({ "accepted": items.len() });
    respond(StatusCode::ACCEPTED, &accepted.to_string())
}

/// `42["event",data]` as one complete server WebSocket text frame.
fn event_frame(event: &str, data: &Value) -> Bytes {
    let mut packet = Vec::with_capacity(512);
    packet.extend_from_slice(b"42[");
    let _ = serde_json::to_writer(&mut packet, event);
    packet.push(b',');
    let _ = serde_json::to_writer(&mut packet, data);
    packet.push(b']');
    frame::encode(frame::TEXT, &packet)
}

/// The Engine.IO WebSocket endpoint: `/socket.io/?EIO=4&transport=websocket`.
fn upgrade(hub: Arc<Hub>, mut req: Request<Incoming>) -> Answer {
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    if param("EIO") != Some("4") {
        let why = r#"{"code":5,"message":"Unsupported protocol version"}"#;
        return respond(StatusCode::BAD_REQUEST, why);
    }
    if param("transport") != Some("websocket") {
        let why = r#"{"code":0,"message":"Transport unknown"}"#;
        return respond(StatusCode::BAD_REQUEST, why);
    }
    let headers = req.headers();
    let websocket = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY).filter(|_| websocket) else {
        let why = r#"{"code":3,"message":"Bad request"}"#;
        return respond(StatusCode::BAD_REQUEST, why);
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await.map(|u| u.downcast::<TokioIo<TcpStream>>()) {
            Ok(Ok(parts)) => conn::serve(hub, parts.io.into_inner(), parts.read_buf).await,
            _ => eprintln!("floor: a WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::default())
        .expect("a valid response")
}

fn respond(status: StatusCode, json: &str) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::copy_from_slice(json.as_bytes())));
    *answer.status_mut() = status;
    if !json.is_empty() {
        answer.headers_mut().insert(
            CONTENT_TYPE,
            "application/json".parse().expect("a valid header"),
        );
    }
    answer
}
