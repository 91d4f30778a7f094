//! The Server-Sent Events client, on a plain TCP stream (a whole HTTP client per
//! connection would cost the load generator more CPU than the servers it measures):
//! `GET /events?access_token=…&topics=<room>`, then one event per SSE message. The
//! server's first message (Vigil's `connected`) says the subscription is in place.

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::body::{self, Body, Chunks};
use super::{step, Received, Recorder, Target};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 8 * 1024;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Event names by which a server says it is ending the stream.
const CLOSING_EVENTS: [&str; 2] = ["disconnect", "closing"];

/// An open SSE stream.
pub struct Stream {
    tcp: TcpStream,
    body: Body,
    /// Body bytes not yet split into messages.
    pending: Vec<u8>,
}

/// Sends the request, reads the response head and the first message.
pub async fn connect(mut tcp: TcpStream, target: &Target) -> anyhow::Result<Stream> {
    let host = crate::net::authority(&target.base);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        target.path()
    );
    tcp.write_all(request.as_bytes()).await?;
    let (head, rest) = step("the response head", read_head(&mut tcp)).await??;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("answered {}", head.lines().next().unwrap_or(""));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut stream = Stream {
        tcp,
        body: if chunked {
            Body::Chunked(Chunks::default())
        } else {
            Body::Raw
        },
        pending: Vec::new(),
    };
    stream.feed(&rest)?;
    step("the first message", async {
        while body::messages(&mut stream.pending).is_empty() {
            stream.read().await?;
        }
        anyhow::Ok(())
    })
    .await??;
    Ok(stream)
}

/// Reads up to the end of the head; returns it and the body bytes read past it.
async fn read_head(tcp: &mut TcpStream) -> anyhow::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > MAX_HEAD {
            bail!("response head over {MAX_HEAD} bytes");
        }
        let mut chunk = [0; 2048];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl Stream {
    fn feed(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.body
            .decode(bytes, &mut self.pending)
            .map_err(anyhow::Error::msg)
            .context("decoding the body")
    }

    /// Reads once; an error when the connection ended.
    async fn read(&mut self) -> anyhow::Result<()> {
        let mut chunk = vec![0; READ_CHUNK];
        let n = self.tcp.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed");
        }
        self.feed(&chunk[..n])
    }
}

/// Receives until `stop`, recording the events of every message.
pub async fn receive(
    mut stream: Stream,
    mut rec: Recorder,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut chunk = vec![0; READ_CHUNK];
    let ended = 'read: loop {
        let n = tokio::select! {
            n = stream.tcp.read(&mut chunk) => n,
            _ = stop.wait_for(|s| *s) => break None,
        };
        match n {
            Ok(0) => break Some("closed".to_owned()),
            Err(e) => break Some(format!("error: {e}")),
            Ok(n) => {
                if let Err(e) = stream.feed(&chunk[..n]) {
                    break Some(format!("{e:#}"));
                }
            }
        }
        for m in body::messages(&mut stream.pending) {
            if CLOSING_EVENTS.contains(&m.event.as_str()) {
                break 'read Some(m.data);
            }
            rec.record(&m.data);
        }
    };
    rec.got.ended_early = ended;
    rec.got
}
