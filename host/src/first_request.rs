//! A connection's request before the HTTP server has it, read just far enough to tell
//! what the host serves on the connection itself, off the HTTP server — a plain
//! `GET /events` (an SSE stream: an idle one then holds none of the server's buffers)
//! or a long-poll of the components' API ([`crate::long_poll`]: a parked one holds none
//! either) — from anything else, which goes to the HTTP server with the bytes already
//! read put back ([`Rewind`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use vigil_push::sse::direct;
use vigil_transport::wire::http::{is_path, sniff, Head, Sniffed};

use crate::long_poll;

/// Bytes the first read takes: a typical request head (a browser's is under 2 KB) in
/// one read. A longer head grows the buffer, up to `wire::http::MAX_HEAD`.
const FIRST_READ: usize = 2048;

/// What a connection's next request is.
#[derive(Debug)]
pub enum First {
    /// The whole head of a `GET /events`, nothing after it.
    Direct(Head),
    /// The whole head of a long-poll ([`long_poll::takes`]), and the bytes sent after it
    /// (in an allocation of their own: the read buffer is freed).
    LongPoll(Head, BytesMut),
    /// Anything else: the bytes read so far, for the HTTP server.
    Http(Bytes),
    /// The client went away before sending anything.
    Gone,
}

/// Reads `io`, after the bytes it already sent (`buf`), until they tell what the next
/// request is.
pub async fn read<IO: AsyncRead + Unpin>(io: &mut IO, mut buf: BytesMut) -> First {
    let wanted = |target: &str| is_path(target, direct::PATH) || long_poll::takes(target);
    loop {
        if !buf.is_empty() {
            match sniff(&buf, wanted) {
                Sniffed::More => {}
                Sniffed::Other => return First::Http(buf.freeze()),
                Sniffed::Head(head) => return taken(head, buf),
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().max(FIRST_READ));
        }
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return First::Gone,
            // What came before the end is the HTTP server's to answer or drop.
            Ok(0) | Err(_) => return First::Http(buf.freeze()),
            Ok(_) => {}
        }
    }
}

/// What a taken head (read from `buf`) is for.
fn taken(head: Head, buf: BytesMut) -> First {
    let rest = &buf[head.len..];
    if head.uri.path() != direct::PATH {
        return First::LongPoll(head, BytesMut::from(rest));
    }
    // An SSE stream keeps the connection: nothing may follow its request.
    match rest.is_empty() {
        true => First::Direct(head),
        false => First::Http(buf.freeze()),
    }
}

/// A stream whose first reads return bytes already read from it.
pub struct Rewind<IO> {
    prefix: Bytes,
    inner: IO,
}

impl<IO> Rewind<IO> {
    /// `inner`, with `prefix` read again first.
    pub fn new(prefix: Bytes, inner: IO) -> Self {
        Self { prefix, inner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            self.prefix = Bytes::new(); // frees the read buffer
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_get_of_the_path_in_pieces_is_taken_whole() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let reader = tokio::spawn(async move { read(&mut server, BytesMut::new()).await });
        for piece in ["GET /ev", "ents?since=3 HTTP/1.1\r\nHo", "st: x\r\n\r\n"] {
            client.write_all(piece.as_bytes()).await.unwrap();
            tokio::task::yield_now().await;
        }
        let First::Direct(head) = reader.await.unwrap() else {
            panic!("taken")
        };
        assert_eq!(head.uri.query(), Some("since=3"));
    }

    #[tokio::test]
    async fn anything_else_is_read_again_in_full_by_the_http_server() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(req.as_bytes()).await.unwrap();
        let First::Http(prefix) = read(&mut server, BytesMut::new()).await else {
            panic!("for the HTTP server")
        };
        client.write_all(b"more").await.unwrap();
        drop(client);
        let mut again = String::new();
        let mut rewound = Rewind::new(prefix, server);
        rewound.read_to_string(&mut again).await.unwrap();
        assert_eq!(again, format!("{req}more"));
    }

    #[tokio::test]
    async fn a_client_gone_before_a_byte_is_gone() {
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(matches!(
            read(&mut server, BytesMut::new()).await,
            First::Gone
        ));
    }

    #[tokio::test]
    async fn a_long_poll_is_taken_with_what_came_after_it() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let poll = "GET /api/v1/events?timeout=5 HTTP/1.1\r\nHost: x\r\n\r\n";
        let next = "GET /health HTTP/1.1\r\n";
        client
            .write_all(format!("{poll}{next}").as_bytes())
            .await
            .unwrap();
        let First::LongPoll(head, rest) = read(&mut server, BytesMut::new()).await else {
            panic!("a long-poll")
        };
        assert_eq!(head.uri.query(), Some("timeout=5"));
        assert_eq!(&rest[..], next.as_bytes());
        // What came after is looked at first: here, for the HTTP server.
        let First::Http(prefix) = read(&mut server, rest).await else {
            panic!("for the HTTP server")
        };
        assert_eq!(&prefix[..], next.as_bytes());
    }

    #[tokio::test]
    async fn an_sse_request_with_bytes_after_it_goes_to_the_http_server() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let req = "GET /events HTTP/1.1\r\n\r\nGET /events HTTP/1.1\r\n\r\n";
        client.write_all(req.as_bytes()).await.unwrap();
        let First::Http(prefix) = read(&mut server, BytesMut::new()).await else {
            panic!("for the HTTP server")
        };
        assert_eq!(&prefix[..], req.as_bytes());
    }
}
