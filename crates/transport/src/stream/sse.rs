//! An SSE stream: the response head, then everything the connection's queue holds,
//! framed as SSE messages, until an [`Outgoing::End`] (or a closed queue) or the client
//! goes away. Served on the connection itself ([`run`]: one task, one `writev` per
//! wake-up, the body delimited by the connection's end) or as an HTTP library's body
//! ([`SseBody`]: one chunk per wake-up). With gzip, each wake-up's bytes are compressed
//! and flushed, so nothing waits in the compressor.

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::MAX_ROUNDS;
use crate::conn::framing::{Framing, Sse};
use crate::conn::queue::Queue;
use crate::conn::writer::{with_gather, Gather, Writer};
use crate::conn::{with_drained, Outgoing};

/// Bytes read (and dropped) per call: an SSE client sends nothing after its request,
/// the read only notices when it goes away.
const DISCARD_CHUNK: usize = 256;

/// A gzip stream flushed after every write (a sync flush: the client can decode
/// everything received so far).
pub struct Gzip(GzEncoder<Vec<u8>>);

impl Default for Gzip {
    fn default() -> Self {
        Self(GzEncoder::new(Vec::new(), Compression::fast()))
    }
}

impl Gzip {
    /// `text` compressed and flushed.
    pub fn compress(&mut self, text: &[u8]) -> Bytes {
        if let Err(e) = self.0.write_all(text).and_then(|()| self.0.flush()) {
            tracing::error!(error = %e, "gzip failed");
        }
        Bytes::from(std::mem::take(self.0.get_mut()))
    }
}

/// Frames what the queue holds into `g`; `true` once the stream is over (an End was
/// taken, or the queue closed: its reason is told as an End's).
fn gather(queue: &Queue<Outgoing>, gzip: Option<&mut Gzip>, g: &mut Gather) -> bool {
    let ended = with_drained(queue, |batch| {
        let end = batch.iter().position(|m| matches!(m, Outgoing::End { .. }));
        // Up to and with the End: its reason, if it has one, is the last message.
        for item in &batch[..end.map_or(batch.len(), |e| e + 1)] {
            Sse.frame(item, g);
        }
        end.is_some()
    });
    if ended.is_none() {
        let reason = queue.closed().unwrap_or_default();
        let end = Outgoing::End {
            ns: 0,
            code: 0,
            reason: reason.into(),
        };
        Sse.frame(&end, g);
    }
    if let Some(gz) = gzip.filter(|_| !g.is_empty()) {
        let compressed = gz.compress(&g.concat());
        g.replace(compressed);
    }
    ended.unwrap_or(true)
}

/// Serves `io` as an SSE stream: `head` (the HTTP response head), then `first`
/// (messages made before the stream started, e.g. `connected` and a replay), then the
/// queue; with `gzip`, everything after the head is compressed. Returns when the stream
/// ended or the client went away.
pub async fn run<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    head: Bytes,
    first: Bytes,
    queue: Arc<Queue<Outgoing>>,
    gzip: bool,
) {
    let mut writer = Writer::default();
    writer.queue_after(&head);
    let mut gzip: Option<Box<Gzip>> = gzip.then(Box::default);
    match gzip.as_deref_mut() {
        Some(gz) => writer.queue_after(&gz.compress(&first)),
        None => writer.queue_after(&first),
    }
    // Copied to the backlog (freed once written): not held for the stream's life.
    drop((head, first));
    let mut d = Driver {
        io,
        queue,
        writer,
        gzip,
        ended: false,
    };
    std::future::poll_fn(|cx| d.poll_run(cx)).await;
}

struct Driver<IO> {
    io: IO,
    queue: Arc<Queue<Outgoing>>,
    writer: Writer,
    gzip: Option<Box<Gzip>>,
    ended: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Driver<IO> {
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_ROUNDS {
            match self.round(cx) {
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
                Err(()) => return Poll::Ready(()),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One round; `Ok(true)` if anything happened, `Err` once the connection is done.
    fn round(&mut self, cx: &mut Context<'_>) -> Result<bool, ()> {
        let mut busy = false;
        let mut chunk = [0u8; DISCARD_CHUNK];
        let mut rb = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return Err(()),
            Poll::Ready(Err(_)) => return Err(()),
            Poll::Ready(Ok(())) => busy = true,
            Poll::Pending => {}
        }
        if self.writer.is_blocked() {
            return match self.writer.poll_flush(&mut self.io, cx) {
                Poll::Ready(Ok(())) => Ok(true),
                Poll::Ready(Err(_)) => Err(()),
                Poll::Pending => Ok(busy),
            };
        }
        if self.ended {
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            return Err(());
        }
        if self.queue.poll_ready(cx).is_ready() {
            let (io, writer, queue) = (&mut self.io, &mut self.writer, &self.queue);
            let gzip = self.gzip.as_deref_mut();
            self.ended = with_gather(|g| {
                let ended = gather(queue, gzip, g);
                writer.write(io, cx, g).map(|()| ended)
            })
            .map_err(drop)?;
            busy = true;
        }
        Ok(busy)
    }
}

/// An SSE stream as an HTTP response body: one chunk per wake-up.
pub struct SseBody {
    queue: Arc<Queue<Outgoing>>,
    /// Messages made before the stream started (e.g. `connected`, a replay), sent first.
    head: Option<Bytes>,
    gzip: Option<Box<Gzip>>,
    ended: bool,
}

impl SseBody {
    /// The body of a stream that sends `head`, then what comes from `queue`.
    pub fn new(queue: Arc<Queue<Outgoing>>, head: Bytes, gzip: bool) -> Self {
        Self {
            queue,
            head: Some(head).filter(|h| !h.is_empty()),
            gzip: gzip.then(Box::default),
            ended: false,
        }
    }
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let me = &mut *self;
        if let Some(head) = me.head.take() {
            let head = match me.gzip.as_deref_mut() {
                Some(gz) => gz.compress(&head),
                None => head,
            };
            return Poll::Ready(Some(Ok(http_body::Frame::data(head))));
        }
        loop {
            if me.ended {
                return Poll::Ready(None);
            }
            if me.queue.poll_ready(cx).is_pending() {
                return Poll::Pending;
            }
            let chunk = with_gather(|g| {
                me.ended = gather(&me.queue, me.gzip.as_deref_mut(), g);
                g.concat()
            });
            if !chunk.is_empty() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(chunk.into()))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::payload::Payload;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn update(seq: u64) -> Outgoing {
        let body = Bytes::from(format!("{{\"seq\":{seq}}}"));
        Outgoing::Payload {
            ns: 0,
            payload: Arc::new(Payload::new("task_update".into(), seq, body, false)),
        }
    }

    fn end() -> Outgoing {
        Outgoing::End {
            ns: 0,
            code: 1000,
            reason: "done".into(),
        }
    }

    #[tokio::test]
    async fn the_head_then_each_message_then_the_end_of_the_connection() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let queue = Arc::new(Queue::new(16));
        let queue2 = queue.clone();
        let head = Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n");
        let first = Bytes::from_static(b": hi\n\n");
        let task = tokio::spawn(run(server, head, first, queue2, false));
        queue
            .push_all([update(1), Outgoing::Heartbeat, update(2)])
            .unwrap();
        queue.push_all([end(), update(3)]).unwrap();
        let mut client = client;
        let mut all = String::new();
        client.read_to_string(&mut all).await.unwrap();
        task.await.unwrap();
        assert_eq!(
            all,
            "HTTP/1.1 200 OK\r\n\r\n: hi\n\nid: 1\nevent: task_update\ndata: {\"seq\":1}\n\n\
             : keep-alive\n\nid: 2\nevent: task_update\ndata: {\"seq\":2}\n\n\
             event: disconnect\ndata: {\"reason\":\"done\"}\n\n"
        );
    }

    #[tokio::test]
    async fn with_gzip_the_head_stays_plain_and_the_rest_decodes() {
        use std::io::Read;
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let queue = Arc::new(Queue::new(16));
        let q = queue.clone();
        let (head, first) = (
            Bytes::from_static(b"HEAD\r\n\r\n"),
            Bytes::from_static(b": hi\n\n"),
        );
        let task = tokio::spawn(run(server, head, first, q, true));
        queue.push_all([update(1), end()]).unwrap();
        let mut all = Vec::new();
        client.read_to_end(&mut all).await.unwrap();
        task.await.unwrap();
        assert!(all.starts_with(b"HEAD\r\n\r\n"));
        let mut text = String::new();
        let _ = flate2::read::GzDecoder::new(&all[8..]).read_to_string(&mut text);
        assert!(text.starts_with(": hi\n\nid: 1\n"), "{text:?}");
        assert!(text.ends_with("event: disconnect\ndata: {\"reason\":\"done\"}\n\n"));
    }

    #[tokio::test]
    async fn a_client_that_goes_away_ends_the_stream() {
        let (mut client, server) = tokio::io::duplex(1024);
        let queue = Arc::new(Queue::new(16));
        let task = tokio::spawn(run(server, Bytes::new(), Bytes::new(), queue, false));
        client.write_all(b"stray bytes are dropped").await.unwrap();
        drop(client);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("ended")
            .unwrap();
    }

    #[tokio::test]
    async fn as_a_body_each_wake_up_is_one_chunk_and_gzip_decodes_so_far() {
        use std::io::Read;
        let queue = Arc::new(Queue::new(16));
        let mut body = SseBody::new(queue.clone(), Bytes::from_static(b": hi\n\n"), true);
        queue.push_all([update(1), update(2)]).unwrap();
        let mut first = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap()
            .to_vec();
        first.extend(body.frame().await.unwrap().unwrap().into_data().unwrap());
        let mut raw = Vec::new();
        // A sync flush: everything so far decodes before the stream ends.
        let _ = flate2::read::GzDecoder::new(&first[..]).read_to_end(&mut raw);
        let text = String::from_utf8(raw).unwrap();
        assert!(text.starts_with(": hi\n\nid: 1\n"), "{text:?}");
        assert!(text.ends_with("data: {\"seq\":2}\n\n"), "{text:?}");
        queue.push(end()).unwrap();
        let last = body.frame().await.unwrap().unwrap().into_data().unwrap();
        first.extend(last);
        let mut raw = Vec::new();
        let _ = flate2::read::GzDecoder::new(&first[..]).read_to_end(&mut raw);
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.ends_with("event: disconnect\ndata: {\"reason\":\"done\"}\n\n"),
            "the End's reason is the last message: {text:?}"
        );
        assert!(body.frame().await.is_none(), "the End ends the body");
    }
}
