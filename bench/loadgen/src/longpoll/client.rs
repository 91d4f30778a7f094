//! One long-poll client: its own keep-alive connection, one `GET`, and the moment the
//! whole answer was read.

use std::net::IpAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::client::body::{Body, Chunks};

/// Longest answer head read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest answer body read (the feed's page of one batch is a few KiB).
const MAX_BODY: usize = 4 << 20;

/// How one long-poll ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The answer's status; 0 when there was none (the error says why).
    pub status: u16,
    /// The answer is the one the benchmark waits for: 200 with the feed's events or a
    /// finished job.
    pub answered: bool,
    /// When its last byte was read, ns since the run's origin.
    pub at_ns: u64,
    /// What went wrong, if something did.
    pub error: Option<String>,
}

/// What every client shares.
pub struct Shared {
    /// `host:port` of the server.
    pub server: String,
    /// The run's clock origin.
    pub origin: Instant,
    /// Where outcomes go.
    pub outcomes: mpsc::UnboundedSender<Outcome>,
    /// Turns true when the run is over: connections are closed only then, so the
    /// server's work for 10 000 hang-ups is not counted as the answers' work.
    pub stop: watch::Receiver<bool>,
}

/// Connects from `source`, sends `request` (a whole request head) and reads its answer;
/// reports the outcome, then holds the connection until the run stops.
pub async fn run(shared: &Shared, source: Option<IpAddr>, request: String) {
    let mut stop = shared.stop.clone();
    let mut stream = match crate::net::connect(&shared.server, source).await {
        Ok(s) => s,
        Err(e) => {
            let _ = shared.outcomes.send(failed(shared, format!("{e:#}")));
            return;
        }
    };
    let outcome = tokio::select! {
        o = ask(&mut stream, request.as_bytes(), shared.origin) => o,
        _ = stop.wait_for(|s| *s) => return,
    };
    let _ = shared.outcomes.send(outcome);
    let _ = stop.wait_for(|s| *s).await;
}

fn failed(shared: &Shared, error: String) -> Outcome {
    Outcome {
        status: 0,
        answered: false,
        at_ns: shared.origin.elapsed().as_nanos() as u64,
        error: Some(error),
    }
}

async fn ask(stream: &mut TcpStream, request: &[u8], origin: Instant) -> Outcome {
    let result = exchange(stream, request).await;
    let at_ns = origin.elapsed().as_nanos() as u64;
    match result {
        Ok((status, body)) => Outcome {
            status,
            answered: status == 200 && is_the_answer(&body),
            at_ns,
            error: None,
        },
        Err(e) => Outcome {
            status: 0,
            answered: false,
            at_ns,
            error: Some(e),
        },
    }
}

/// Whether `body` is what a woken long-poll returns: the feed with events in it, or a
/// job wait whose job finished (`bench_longpoll.py` checks the same).
pub fn is_the_answer(body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(b"\"events\":[{") || has(b"\"completed\"")
}

/// Sends `request` and reads one answer: its status and body.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let (status, framing, head_len) = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if buf.len() > MAX_HEAD {
            return Err("answer head too long".into());
        }
        read_more(stream, &mut buf).await?;
    };
    let mut body = Vec::new();
    let mut rest = buf.split_off(head_len);
    match framing {
        Framing::Length(n) => loop {
            body.append(&mut rest);
            if body.len() >= n {
                body.truncate(n);
                return Ok((status, body));
            }
            read_more(stream, &mut rest).await?;
        },
        Framing::Chunked => {
            let mut chunks = Body::Chunked(Chunks::default());
            loop {
                chunks.decode(&rest, &mut body)?;
                rest.clear();
                if matches!(&chunks, Body::Chunked(c) if c.done) {
                    return Ok((status, body));
                }
                if body.len() > MAX_BODY {
                    return Err("answer body too long".into());
                }
                read_more(stream, &mut rest).await?;
            }
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.reserve(4096);
    match stream.read_buf(buf).await {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading: {e}")),
    }
}

/// How the answer's body is delimited.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// The status, framing and length of a complete answer head at the front of `buf`;
/// `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, Framing, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad answer head: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let mut framing = Framing::Length(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n <= MAX_BODY)
                .ok_or("bad content-length")?;
            framing = Framing::Length(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")
        {
            framing = Framing::Chunked;
        }
    }
    Ok(Some((status, framing, head_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_their_framing() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{\"a\":1}";
        assert_eq!(
            parse_head(head).unwrap(),
            Some((200, Framing::Length(12), head.len() - 7))
        );
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_head(chunked).unwrap(),
            Some((503, Framing::Chunked, chunked.len()))
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncont").unwrap(), None);
        assert!(parse_head(b"nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn only_events_or_a_finished_job_count_as_the_answer() {
        assert!(is_the_answer(br#"{"events":[{"seq":3}],"seq":3}"#));
        assert!(is_the_answer(br#"{"status":"completed","result":"1"}"#));
        assert!(!is_the_answer(br#"{"events":[],"seq":3}"#));
        assert!(!is_the_answer(br#"{"status":"pending"}"#));
    }

    #[tokio::test]
    async fn an_answer_is_read_whole_across_reads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0; 256];
            let _ = s.read(&mut req).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"sta")
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            s.write_all(b"\r\n11\r\ntus\":\"completed\"}\r\n0\r\n\r\n")
                .await
                .unwrap();
            s
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(false);
        let shared = Shared {
            server: addr.to_string(),
            origin: Instant::now(),
            outcomes: tx,
            stop,
        };
        let client = tokio::spawn(async move {
            run(&shared, None, "GET /x HTTP/1.1\r\nhost: t\r\n\r\n".into()).await;
        });
        let outcome = rx.recv().await.unwrap();
        assert_eq!(outcome.status, 200);
        assert!(outcome.answered, "{outcome:?}");
        stop_tx.send(true).unwrap();
        client.await.unwrap();
        drop(server.await.unwrap());
    }
}
