//! A new connection's first request, read just far enough to tell a plain
//! `GET /events` — served on the connection itself, off the HTTP server, so an idle SSE
//! stream holds none of its buffers — from anything else, which goes to the HTTP server
//! with the bytes already read put back ([`Rewind`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use vigil_transport::wire::http::{sniff, Head, Sniffed};

/// Bytes the first read takes: a typical request head (a browser's is under 2 KB) in
/// one read. A longer head grows the buffer, up to `wire::http::MAX_HEAD`.
const FIRST_READ: usize = 2048;

/// What a connection's first bytes were.
#[derive(Debug)]
pub enum First {
    /// The whole head of a `GET` of the path, nothing after it.
    Direct(Head),
    /// Anything else: the bytes read so far, for the HTTP server.
    Http(Bytes),
    /// The client went away before sending anything.
    Gone,
}

/// Reads `io` until its first bytes tell whether they are a `GET` of `path`.
pub async fn read<IO: AsyncRead + Unpin>(io: &mut IO, path: &str) -> First {
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len());
        }
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return First::Gone,
            // What came before the end is the HTTP server's to answer or drop.
            Ok(0) | Err(_) => return First::Http(buf.freeze()),
            Ok(_) => {}
        }
        match sniff(&buf, path) {
            Sniffed::More => {}
            Sniffed::Other => return First::Http(buf.freeze()),
            Sniffed::Head(head) => return First::Direct(head),
        }
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
        let reader = tokio::spawn(async move { read(&mut server, "/events").await });
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
        let First::Http(prefix) = read(&mut server, "/events").await else {
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
        assert!(matches!(read(&mut server, "/events").await, First::Gone));
    }
}
