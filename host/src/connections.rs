//! Accepting connections, with limits on each: how long a client may take to send a
//! request's headers (also how long an idle keep-alive connection waits for its next
//! request), how long a write may stall before a client that stopped reading is cut
//! off, and how many connections are served at once.
//!
//! Past [`ConnectionLimits::max_connections`] a connection is still answered, by a
//! small bounded responder: `GET /health` gets `200`, anything else (`/ready` included)
//! a JSON `503` with `Retry-After`, and the connection is closed. The process never
//! runs out of descriptors for its own work: the default cap stays under the process's
//! open-file limit.
//!
//! A plain `GET /events` is served on the connection itself
//! ([`vigil_push::sse::direct`], see [`crate::first_request`]): an idle SSE stream then
//! holds no HTTP server state; so is a long-poll ([`crate::long_poll`]): a parked one
//! holds none either, and after its answer the connection's next request is told the
//! same way. Telling takes the request's first bytes, read within the header-read
//! timeout (which also bounds the wait for a next request); the rest go to the HTTP
//! server with those bytes put back (a request line dribbled in byte by byte thus gets
//! up to twice the timeout).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::BytesMut;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use vigil_core::error::ApiError;
use vigil_push::sse::direct;
use vigil_push::PushState;

use crate::first_request::{self, First, Rewind};
use crate::long_poll;
use crate::write_timeout::WriteTimeout;

/// Connections served at once unless the open-file limit is lower.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Descriptors kept for everything but client connections (stores, the engine, logs,
/// the over-capacity responder): the cap stays this far under the open-file limit.
const FD_RESERVE: usize = 128;
/// Over-capacity connections answered at once; more are closed without an answer.
const OVERFLOW_MAX: usize = 64;
/// Longest the over-capacity responder spends on one connection.
const OVERFLOW_DEADLINE: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. out of descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits (each a `vigil serve` flag).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's headers, counted from when the
    /// server starts waiting for them: a silent new connection, a slow header sender and
    /// an idle keep-alive connection are all closed after it.
    pub header_read_timeout: Duration,
    /// Longest a write may make no progress before the connection is closed: a client
    /// that stopped reading loses its socket, whatever the transport.
    pub write_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: crate::config::defaults::HEADER_READ_TIMEOUT,
            write_timeout: crate::config::defaults::WRITE_TIMEOUT,
            max_connections: default_max_connections(),
        }
    }
}

/// [`DEFAULT_MAX_CONNECTIONS`], or less under a lower open-file limit.
pub fn default_max_connections() -> usize {
    open_file_limit()
        .map(|n| n.saturating_sub(FD_RESERVE).max(1))
        .map_or(DEFAULT_MAX_CONNECTIONS, |n| n.min(DEFAULT_MAX_CONNECTIONS))
}

/// The soft open-file limit, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `router` (and SSE streams off it, on `push`) on `listener` until `shutdown`
/// completes, then lets open connections finish (push connections are ended by
/// `shutdown` itself).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    push: PushState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_MAX));
    let (closing, close_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Push frames are small and latency-bound: without TCP_NODELAY, Nagle holds a
        // frame while the previous one waits for the client's delayed ACK (~40 ms).
        let _ = tcp.set_nodelay(true);
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            let conn = Connection {
                router: router.clone(),
                push: push.clone(),
                addr,
                limits: limits.clone(),
                closing: close_rx.clone(),
                _permit: permit,
            };
            tokio::spawn(conn.run(tcp));
        } else if let Ok(permit) = overflow.clone().try_acquire_owned() {
            tokio::spawn(over_capacity(tcp, limits.max_connections, permit));
        }
    }
    let _ = closing.send(true);
    drop(close_rx);
    closing.closed().await;
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Connection {
    router: Router,
    push: PushState,
    addr: SocketAddr,
    limits: ConnectionLimits,
    closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection: requests the host takes off the HTTP server
    /// ([`first_request`]) one after the other, until one goes to the HTTP server, which
    /// then has the connection for good.
    async fn run(mut self, tcp: TcpStream) {
        let mut io = WriteTimeout::new(tcp, self.limits.write_timeout);
        let mut sent = BytesMut::with_capacity(0);
        loop {
            let next = first_request::read(&mut io, sent);
            let next = tokio::select! {
                next = tokio::time::timeout(self.limits.header_read_timeout, next) => next,
                _ = self.closing.wait_for(|closing| *closing) => return,
            };
            match next {
                // Boxed, like the HTTP server below: the connection's task is then
                // sized for what a parked long-poll holds, not for the largest way of
                // serving a connection.
                Ok(First::Direct(head)) => {
                    return Box::pin(direct::serve(self.push.clone(), io, head)).await
                }
                Ok(First::LongPoll(head, after)) => {
                    let (router, addr) = (self.router.clone(), self.addr);
                    let next = long_poll::serve(router, addr, &mut io, head, after, &self.closing);
                    match next.await {
                        Some(after) => sent = after,
                        None => return,
                    }
                }
                Ok(First::Http(prefix)) => {
                    return Box::pin(self.http(Rewind::new(prefix, io))).await
                }
                // Silent for the whole header-read timeout, or gone.
                Ok(First::Gone) | Err(_) => return,
            }
        }
    }

    /// Serves the connection's HTTP requests.
    async fn http(mut self, io: Rewind<WriteTimeout>) {
        let io = TokioIo::new(io);
        let (router, addr) = (self.router.clone(), self.addr);
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(addr));
            router.clone().oneshot(req)
        });
        // HTTP/1.1 only (WebSocket upgrades included): hyper-util's auto builder first
        // waits for bytes to tell HTTP/2 from HTTP/1, with no timeout, so a silent
        // connection would never reach the header-read timeout.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let conn = builder.serve_connection(io, service).with_upgrades();
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = self.closing.wait_for(|closing| *closing) => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// Answers a connection past the cap and closes it: `/health` 200, anything else 503.
async fn over_capacity(mut tcp: TcpStream, cap: usize, _permit: OwnedSemaphorePermit) {
    /// Enough of a request to see its method and path.
    const HEAD_BYTES: usize = 256;
    let answer = async {
        let mut head = [0u8; HEAD_BYTES];
        let n = tcp.read(&mut head).await?;
        let response = if head[..n].starts_with(b"GET /health ") {
            raw_response(200, "OK", r#"{"status":"ok"}"#)
        } else {
            let e = ApiError::unavailable(format!(
                "the server is at its connection limit ({cap}); retry shortly"
            ));
            raw_response(503, "Service Unavailable", &e.to_json())
        };
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(OVERFLOW_DEADLINE, answer).await;
}

fn raw_response(status: u16, reason: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_stays_under_the_open_file_limit() {
        let cap = default_max_connections();
        assert!((1..=DEFAULT_MAX_CONNECTIONS).contains(&cap));
        if let Some(limit) = open_file_limit().filter(|l| *l > FD_RESERVE) {
            assert!(cap + FD_RESERVE <= limit, "{cap} under a limit of {limit}");
        }
    }

    #[test]
    fn raw_responses_are_well_formed() {
        let r = raw_response(503, "Service Unavailable", "{}");
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.contains("content-length: 2\r\n"));
        assert!(r.ends_with("\r\n\r\n{}"));
    }
}
