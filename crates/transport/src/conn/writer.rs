//! The one write path: a connection's queued messages leave in one `writev` per
//! wake-up, each as a few slices — small per-message headers and the payload bytes
//! every connection shares — so nothing is copied unless the connection takes less
//! than everything (then the rest is kept, and written once it can take more).
//!
//! Writing happens inside a connection's `poll` (`poll_write_vectored` on whatever the
//! connection is: a TCP stream, or hyper's upgraded connection): the slices are gathered
//! in a per-thread scratch ([`Gather`]), never held across an `await`, so a connection
//! owns no write buffer while it keeps up.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Most slices handed to one `writev` (Linux's `IOV_MAX` is 1024).
pub const MAX_SLICES: usize = 512;

/// One piece of what is written.
#[derive(Debug)]
enum Part {
    /// Bytes `start..end` of [`Gather::heads`]: a header made for this message.
    Head(usize, usize),
    /// Bytes shared with other connections (a payload).
    Shared(Bytes),
    /// A constant.
    Static(&'static [u8]),
}

/// The slices of one write, gathered per thread and reused.
#[derive(Debug, Default)]
pub struct Gather {
    heads: Vec<u8>,
    parts: Vec<Part>,
}

impl Gather {
    /// Adds bytes made for this message (copied into the scratch).
    pub fn head(&mut self, bytes: &[u8]) {
        let start = self.heads.len();
        self.heads.extend_from_slice(bytes);
        self.parts.push(Part::Head(start, self.heads.len()));
    }

    /// Adds two pieces made for this message as one slice.
    pub fn head2(&mut self, a: &[u8], b: &[u8]) {
        let start = self.heads.len();
        self.heads.extend_from_slice(a);
        self.heads.extend_from_slice(b);
        self.parts.push(Part::Head(start, self.heads.len()));
    }

    /// Adds shared bytes (not copied).
    pub fn shared(&mut self, bytes: &Bytes) {
        if !bytes.is_empty() {
            self.parts.push(Part::Shared(bytes.clone()));
        }
    }

    /// Adds a constant.
    pub fn constant(&mut self, bytes: &'static [u8]) {
        self.parts.push(Part::Static(bytes));
    }

    /// Slices gathered so far.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn bytes<'a>(&'a self, part: &'a Part) -> &'a [u8] {
        match part {
            Part::Head(s, e) => &self.heads[*s..*e],
            Part::Shared(b) => b,
            Part::Static(s) => s,
        }
    }

    fn clear(&mut self) {
        self.heads.clear();
        self.parts.clear();
    }

    /// Replaces everything gathered by `bytes` (e.g. their compressed form).
    pub fn replace(&mut self, bytes: Bytes) {
        self.clear();
        self.shared(&bytes);
    }

    /// Everything gathered, as one buffer (for transports that hand a body to an HTTP
    /// library rather than write to a socket, and for tests).
    pub fn concat(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend_from_slice(self.bytes(p));
        }
        out
    }
}

thread_local! {
    static GATHER: RefCell<Gather> = RefCell::default();
}

/// Runs `f` with this thread's (cleared) scratch. `f` must not re-enter.
pub fn with_gather<R>(f: impl FnOnce(&mut Gather) -> R) -> R {
    GATHER.with(|g| {
        let mut g = g.borrow_mut();
        g.clear();
        let out = f(&mut g);
        // Give back what a big burst made the scratch grow to.
        if g.heads.capacity() > 64 * 1024 {
            *g = Gather::default();
        }
        out
    })
}

/// What a connection could not write yet.
#[derive(Debug, Default)]
pub struct Writer {
    pending: BytesMut,
}

impl Writer {
    /// Whether bytes wait for the socket to become writable.
    pub fn is_blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes what `g` gathered with as few `writev`s as the connection allows;
    /// whatever it does not take now is kept for [`Writer::poll_flush`] (which `cx`
    /// will be woken for). Errors are the connection's.
    pub fn write<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
        g: &Gather,
    ) -> io::Result<()> {
        debug_assert!(!self.is_blocked(), "flush before writing more");
        let mut first = 0; // index of the first part not wholly written
        let mut offset = 0; // bytes of it already written
        while first < g.parts.len() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            for (slot, part) in slices.iter_mut().zip(&g.parts[first..]) {
                let bytes = g.bytes(part);
                *slot = IoSlice::new(if n == 0 { &bytes[offset..] } else { bytes });
                n += 1;
            }
            let mut written = match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(w)) => w,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            };
            while written > 0 {
                let left = g.bytes(&g.parts[first]).len() - offset;
                if written >= left {
                    written -= left;
                    first += 1;
                    offset = 0;
                } else {
                    offset += written;
                    written = 0;
                }
            }
        }
        self.keep(g, first, offset);
        // Connections that buffer (none of Vigil's do) get their bytes out now.
        match Pin::new(io).poll_flush(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Appends `bytes` after the backlog (for a connection's own small replies while it
    /// waits to write: they keep their place behind what is already pending).
    pub fn queue_after(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Copies the unwritten rest (from part `first`, byte `offset`) to write later.
    fn keep(&mut self, g: &Gather, first: usize, offset: usize) {
        for (i, part) in g.parts.iter().enumerate().skip(first) {
            let bytes = g.bytes(part);
            self.pending
                .extend_from_slice(if i == first { &bytes[offset..] } else { bytes });
        }
    }

    /// Writes what was kept; ready once nothing is left.
    pub fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    let _ = self.pending.split_to(n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // The buffer was only for the backlog: free it.
        self.pending = BytesMut::new();
        Pin::new(io).poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// Writes what `fill` gathers, as a connection's poll would.
    async fn write(w: &mut Writer, io: &mut DuplexStream, fill: impl Fn(&mut Gather)) {
        std::future::poll_fn(|cx| {
            with_gather(|g| {
                fill(g);
                w.write(io, cx, g).unwrap();
            });
            Poll::Ready(())
        })
        .await
    }

    #[tokio::test]
    async fn gathered_parts_arrive_in_order_in_one_write() {
        let (mut server, mut client) = tokio::io::duplex(1 << 16);
        let shared = Bytes::from_static(b"{\"shared\":true}");
        let mut w = Writer::default();
        write(&mut w, &mut server, |g| {
            for i in 0..3 {
                g.head(format!("[{i}]").as_bytes());
                g.shared(&shared);
                g.constant(b"\n");
            }
            assert_eq!(g.len(), 9);
        })
        .await;
        assert!(!w.is_blocked());
        drop(server);
        let mut got = String::new();
        client.read_to_string(&mut got).await.unwrap();
        assert_eq!(
            got,
            "[0]{\"shared\":true}\n[1]{\"shared\":true}\n[2]{\"shared\":true}\n"
        );
    }

    #[tokio::test]
    async fn what_the_connection_does_not_take_is_kept_and_written_later() {
        // A connection that takes 1 KiB before its reader reads.
        let (mut server, mut client) = tokio::io::duplex(1024);
        let big = Bytes::from(vec![b'x'; 4000]);
        let mut w = Writer::default();
        write(&mut w, &mut server, |g| {
            for _ in 0..3 {
                g.head(b"<");
                g.shared(&big);
                g.constant(b">");
            }
        })
        .await;
        assert!(w.is_blocked(), "only 1 KiB went out");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        std::future::poll_fn(|cx| w.poll_flush(&mut server, cx))
            .await
            .unwrap();
        assert!(!w.is_blocked());
        drop(server);
        let all = reader.await.unwrap();
        assert_eq!(all.len(), 3 * (big.len() + 2));
        for i in 0..3 {
            let at = i * (big.len() + 2);
            assert_eq!(
                (all[at], all[at + big.len() + 1]),
                (b'<', b'>'),
                "frame {i} whole"
            );
        }
    }
}
