//! Long-polls with no work per request, the floor of `scripts/bench longpoll`:
//! every `GET /api/…` is held; `POST /api/v1/events` is answered 202 and then writes
//! one fixed small JSON answer to every held request, one `write` each, from the
//! publishing task itself (no wake-up of the held connections' tasks); `GET /metrics`
//! says how many are held (`vigil_long_polls_parked`, Vigil's gauge, so the driver
//! reads both alike).
//!
//! Plain HTTP/1.1 without an HTTP library, keep-alive: after its answer a connection's
//! next request is read as usual. No token is checked and nothing is parsed beyond the
//! request line and `content-length`; the answer is the same bytes for everyone.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::TcpStream;

/// Longest request (head and body) taken; a longer one closes the connection.
const MAX_REQUEST: usize = 1 << 20;
/// What every held request gets: a finished job, as Vigil's job wait says it.
const BODY: &str = r#"{"status":"completed","result":"1"}"#;
const ACCEPTED: &[u8] =
    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Whether a connection whose first bytes are `start` is one of the long-poll
/// benchmark's (held requests, the publish, the gauge).
pub fn is_longpoll(start: &[u8]) -> bool {
    [&b"GET /api/"[..], b"POST /api/", b"GET /metrics"]
        .iter()
        .any(|p| start.starts_with(p))
}

/// Every held request's connection.
pub struct Lot {
    held: Mutex<HashMap<u64, Arc<TcpStream>>>,
    next_id: AtomicU64,
    answer: Vec<u8>,
}

impl Default for Lot {
    fn default() -> Self {
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        Self {
            held: Mutex::default(),
            next_id: AtomicU64::new(1),
            answer: answer.into_bytes(),
        }
    }
}

impl Lot {
    fn held(&self) -> MutexGuard<'_, HashMap<u64, Arc<TcpStream>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the answer to every held request, one `write` each (a socket that takes
    /// only part of it, which 100-odd bytes on an idle connection never meets, gets
    /// the rest from a task of its own); how many were answered.
    pub fn publish(&self) -> usize {
        let held = std::mem::take(&mut *self.held());
        let n = held.len();
        for stream in held.into_values() {
            match stream.try_write(&self.answer) {
                Ok(written) if written == self.answer.len() => {}
                Ok(written) => self.finish_later(stream, written),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.finish_later(stream, 0),
                Err(_) => {} // the client is gone
            }
        }
        n
    }

    fn finish_later(&self, stream: Arc<TcpStream>, written: usize) {
        let rest = self.answer[written..].to_vec();
        tokio::spawn(async move {
            let _ = write_all(&stream, &rest).await;
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    Hold,
    Publish,
    Metrics,
    NotFound,
}

/// The request at the front of `buf` and its whole length with its body; `None` while
/// incomplete, `Err` when it is no HTTP/1.1 request.
fn next_request(buf: &[u8]) -> Result<Option<(Ask, usize)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let mut body = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n <= MAX_REQUEST)
                .ok_or(())?;
        }
    }
    if buf.len() < head + body {
        return Ok(None);
    }
    let path = req.path.unwrap_or("");
    let ask = match req.method.unwrap_or("") {
        "GET" if path.starts_with("/api/") => Ask::Hold,
        "GET" if path == "/metrics" => Ask::Metrics,
        "POST" if path == "/api/v1/events" => Ask::Publish,
        _ => Ask::NotFound,
    };
    Ok(Some((ask, head + body)))
}

/// Serves one connection until the client goes away.
pub async fn serve(lot: Arc<Lot>, stream: TcpStream) {
    let stream = Arc::new(stream);
    let id = lot.next_id.fetch_add(1, Ordering::Relaxed);
    let mut buf = Vec::with_capacity(512);
    'conn: loop {
        loop {
            let (ask, len) = match next_request(&buf) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(()) => {
                    let _ = write_all(&stream, BAD_REQUEST).await;
                    break 'conn;
                }
            };
            buf.drain(..len);
            let written = match ask {
                Ask::Hold => {
                    lot.held().insert(id, stream.clone());
                    Ok(())
                }
                Ask::Publish => {
                    // Acknowledged first, as an ingest is: the answers are timed from it.
                    let acked = write_all(&stream, ACCEPTED).await;
                    lot.publish();
                    acked
                }
                Ask::Metrics => {
                    let gauge = format!("vigil_long_polls_parked {}\n", lot.held().len());
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{gauge}",
                        gauge.len()
                    );
                    write_all(&stream, answer.as_bytes()).await
                }
                Ask::NotFound => write_all(&stream, NOT_FOUND).await,
            };
            if written.is_err() {
                break 'conn;
            }
        }
        if buf.len() > MAX_REQUEST || stream.readable().await.is_err() {
            break;
        }
        match stream.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    lot.held().remove(&id);
}

/// Writes all of `bytes` on a stream others may also write to (between requests, only
/// the publisher does).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn requests_are_taken_whole_with_their_bodies() {
        let get = b"GET /api/v1/events?since=0 HTTP/1.1\r\nhost: b\r\n\r\n";
        assert_eq!(next_request(get), Ok(Some((Ask::Hold, get.len()))));
        let post = b"POST /api/v1/events HTTP/1.1\r\ncontent-length: 4\r\n\r\n[{}]";
        assert_eq!(next_request(&post[..post.len() - 1]), Ok(None));
        assert_eq!(next_request(post), Ok(Some((Ask::Publish, post.len()))));
        let metrics = b"GET /metrics HTTP/1.1\r\n\r\n";
        assert_eq!(
            next_request(metrics),
            Ok(Some((Ask::Metrics, metrics.len())))
        );
        let other = b"DELETE /api/x HTTP/1.1\r\n\r\n";
        assert_eq!(next_request(other), Ok(Some((Ask::NotFound, other.len()))));
        assert_eq!(next_request(b"\x00\x01 nonsense\r\n\r\n"), Err(()));
        assert!(is_longpoll(b"GET /api/adm") && !is_longpoll(b"GET /events?"));
    }

    async fn answer_to(stream: &mut tokio::net::TcpStream) -> String {
        let mut got = Vec::new();
        let mut chunk = [0; 1024];
        while !String::from_utf8_lossy(&got).contains("}") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn a_publish_answers_every_held_request_and_keeps_the_connections() {
        let lot = Arc::new(Lot::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = lot.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                tokio::spawn(serve(server.clone(), s));
            }
        });
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /api/v1/events?since=0 HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            held.push(c);
        }
        while lot.held().len() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let mut publisher = tokio::net::TcpStream::connect(addr).await.unwrap();
        publisher
            .write_all(b"POST /api/v1/events HTTP/1.1\r\ncontent-length: 2\r\n\r\n[]")
            .await
            .unwrap();
        assert!(answer_to(&mut publisher).await.starts_with("HTTP/1.1 202"));
        for c in &mut held {
            let answer = answer_to(c).await;
            assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
            assert!(answer.ends_with(BODY), "{answer}");
        }
        // Keep-alive: the same connection is held again.
        held[0]
            .write_all(b"GET /api/x HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        while lot.held().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // A hang-up frees its place.
        drop(held.remove(0));
        while !lot.held().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
