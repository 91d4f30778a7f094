//! `vigil-bench-floor`: the floor of `scripts/bench`'s push benchmark, the least CPU
//! any server must spend per delivery on this machine, measured with the benchmark's
//! own clients, protocols and contract, for each transport. A lower bound, not a
//! product.
//!
//! - Socket.IO ([`socketio`]): just enough Engine.IO v4 / Socket.IO v5 over WebSocket:
//!   the open packet, the server's heartbeat, CONNECT to `/` with an HS256 JWT in
//!   `auth.token` (refused with CONNECT_ERROR), `subscribe {room}` → `subscribed {room}`.
//! - Native WebSocket ([`ws`]): `GET /ws?access_token=…&topics=<room>`, then one text
//!   message per event.
//! - SSE ([`sse`]): `GET /events?access_token=…&topics=<room>`, then one SSE message per
//!   event, on a body that ends with the connection (no chunk framing).
//!
//! - Long-polls ([`longpoll`]): every `GET /api/…` held until `POST /api/v1/events`,
//!   which writes one fixed answer to all of them (`scripts/bench longpoll`).
//!
//! `POST /publish` `[{room, event, data}]`, as the Node reference takes it, encodes each
//! event once per transport into bytes ready for the wire and queues them for every
//! member of the room ([`hub`]); each connection's writer sends all it has queued with
//! one `writev` ([`writer`]).
//!
//! Skipped: the polling transport and upgrades, acks, binary packets, namespaces
//! other than `/`, leaving rooms (except by disconnecting), compression, and the
//! limits and back-pressure policy a real server needs (a full queue drops frames).
//!
//! - Ingest ([`ingest`], with `INGEST_DB=<file>`): `POST /api/v1/events` stores each
//!   Celery event's task record and logs it in SQLite, committed in groups, and answers
//!   once durable (`scripts/bench ingest`).
//!
//! Environment: PORT (0 = any free port), JWT_SECRET, INGEST_DB. Prints
//! `listening on <port>`.

mod frame;
mod hub;
mod ingest;
mod jwt;
mod longpoll;
mod socketio;
mod sse;
mod writer;
mod ws;

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

use hub::Hub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().map_err(std::io::Error::other)?,
        Err(_) => 0,
    };
    let secret = std::env::var("JWT_SECRET").unwrap_or_default();
    let hub = Arc::new(Hub::new(secret.clone().into_bytes()));
    let lot = Arc::new(longpoll::Lot::default());
    let ingest = match std::env::var_os("INGEST_DB") {
        Some(path) => Some(Arc::new(ingest::Ingest::open(
            path.as_ref(),
            secret.clone().into_bytes(),
        )?)),
        None => None,
    };
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
        let (hub, lot, ingest) = (hub.clone(), lot.clone(), ingest.clone());
        tokio::spawn(async move {
            // The ingest floor serves `POST /api/v1/events` itself, through HTTP, where the
            // long-poll floor would take that connection over.
            if ingest.is_none() {
                let start = peek(&stream).await;
                if sse::is_sse(&start) {
                    return sse::serve(hub, stream).await;
                }
                if longpoll::is_longpoll(&start) {
                    return longpoll::serve(lot, stream).await;
                }
            }
            let service = service_fn(move |req| handle(hub.clone(), ingest.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// The first bytes of the request at the front of `stream`, looking without taking
/// anything off it (fewer if the client sends fewer and waits).
async fn peek(stream: &TcpStream) -> Vec<u8> {
    let mut peek = [0; 12];
    // The request line arrives in one segment in practice; wait for its first bytes.
    for _ in 0..100 {
        match stream.peek(&mut peek).await {
            Ok(n) if n >= peek.len() => break,
            Ok(0) | Err(_) => return Vec::new(),
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    let n = stream.peek(&mut peek).await.unwrap_or(0);
    peek[..n].to_vec()
}

type Answer = Response<Full<Bytes>>;

async fn handle(
    hub: Arc<Hub>,
    ingest: Option<Arc<ingest::Ingest>>,
    req: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let path = req.uri().path();
    Ok(
        if req.method() == Method::POST && path == "/api/v1/events" {
            match ingest {
                Some(ingest) => ingest.accept(req).await,
                None => respond(StatusCode::NOT_FOUND, ""),
            }
        } else if req.method() == Method::POST && path == "/publish" {
            publish(&hub, req).await
        } else if req.method() == Method::GET && matches!(path, "/socket.io/" | "/socket.io") {
            upgrade(hub, req)
        } else if req.method() == Method::GET && path == "/ws" {
            upgrade_ws(hub, req)
        } else {
            respond(StatusCode::NOT_FOUND, "")
        },
    )
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
            hub.publish(room, event, data);
        }
    }
    let accepted = json!({ "accepted": items.len() });
    respond(StatusCode::ACCEPTED, &accepted.to_string())
}

/// The Engine.IO WebSocket endpoint: `/socket.io/?EIO=4&transport=websocket`.
fn upgrade(hub: Arc<Hub>, req: Request<Incoming>) -> Answer {
    let query = req.uri().query().unwrap_or("");
    if param(query, "EIO") != Some("4") {
        let why = r#"{"code":5,"message":"Unsupported protocol version"}"#;
        return respond(StatusCode::BAD_REQUEST, why);
    }
    if param(query, "transport") != Some("websocket") {
        let why = r#"{"code":0,"message":"Transport unknown"}"#;
        return respond(StatusCode::BAD_REQUEST, why);
    }
    switch(req, |stream, read_buf| {
        socketio::serve(hub, stream, read_buf)
    })
}

/// The native WebSocket endpoint: `/ws?access_token=…&topics=a,b`.
fn upgrade_ws(hub: Arc<Hub>, req: Request<Incoming>) -> Answer {
    let query = req.uri().query().unwrap_or("");
    let token = param(query, "access_token").unwrap_or("");
    if !jwt::verify(&hub.secret, token) {
        return respond(StatusCode::UNAUTHORIZED, r#"{"error":"401 unauthorized"}"#);
    }
    let rooms = rooms(query);
    switch(req, |stream, read_buf| {
        ws::serve(hub, stream, read_buf, rooms)
    })
}

/// Answers a WebSocket upgrade and hands the upgraded stream to `serve`.
fn switch<F, Fut>(mut req: Request<Incoming>, serve: F) -> Answer
where
    F: FnOnce(TcpStream, Bytes) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
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
            Ok(Ok(parts)) => serve(parts.io.into_inner(), parts.read_buf).await,
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

/// The value of query parameter `name` (the benchmark's values need no decoding).
pub fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The rooms of a `topics=a,b` query parameter.
pub fn rooms(query: &str) -> Vec<String> {
    param(query, "topics")
        .unwrap_or("")
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
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
