//! The one write path: a connection's queued messages leave in one `writev` per
//! wake-up, each as a few slices — small per-message headers and the payload bytes
//! every connection shares — so nothing is copied unless the socket takes less than
//! everything (then the rest is kept, and written once the socket is writable again).
//!
//! Writing is synchronous (`try_write_vectored` on a non-blocking socket): the slices
//! are gathered in a per-thread scratch ([`Gather`]), never held across an `await`, so
//! a connection owns no write buffer while it keeps up.

use std::cell::RefCell;
use std::io::{self, IoSlice};

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;

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

    /// Writes what `g` gathered with as few `writev`s as the socket allows; whatever it
    /// does not take now is kept for [`Writer::flush`]. Errors are the socket's.
    pub fn write(&mut self, tcp: &TcpStream, g: &Gather) -> io::Result<()> {
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
            let mut written = match tcp.try_write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
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
        Ok(())
    }

    /// Copies the unwritten rest (from part `first`, byte `offset`) to write later.
    fn keep(&mut self, g: &Gather, first: usize, offset: usize) {
        for (i, part) in g.parts.iter().enumerate().skip(first) {
            let bytes = g.bytes(part);
            self.pending
                .extend_from_slice(if i == first { &bytes[offset..] } else { bytes });
        }
    }

    /// Writes what was kept; `Ok(true)` once nothing is left. Call it when the socket
    /// is writable.
    pub fn flush(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while !self.pending.is_empty() {
            match tcp.try_write(&self.pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let _ = self.pending.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        // The buffer was only for the backlog: free it.
        self.pending = BytesMut::new();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn gathered_parts_arrive_in_order_in_one_write() {
        let (server, mut client) = pair().await;
        let shared = Bytes::from_static(b"{\"shared\":true}");
        let mut w = Writer::default();
        with_gather(|g| {
            for i in 0..3 {
                g.head(format!("[{i}]").as_bytes());
                g.shared(&shared);
                g.constant(b"\n");
            }
            assert_eq!(g.len(), 9);
            w.write(&server, g).unwrap();
        });
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
    async fn what_a_full_socket_does_not_take_is_kept_and_written_later() {
        let (server, mut client) = pair().await;
        let big = Bytes::from(vec![b'x'; 256 * 1024]);
        let mut w = Writer::default();
        // Far more than the socket buffers hold while the client does not read.
        for _ in 0..64 {
            if w.is_blocked() {
                break;
            }
            with_gather(|g| {
                g.head(b"<");
                g.shared(&big);
                g.constant(b">");
                w.write(&server, g).unwrap();
            });
        }
        assert!(w.is_blocked(), "the socket filled up");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        while !w.flush(&server).unwrap() {
            server.writable().await.unwrap();
        }
        drop(server);
        let all = reader.await.unwrap();
        assert_eq!(all.len() % (big.len() + 2), 0);
        let frames = all.len() / (big.len() + 2);
        for i in 0..frames {
            let at = i * (big.len() + 2);
            assert_eq!(
                (all[at], all[at + big.len() + 1]),
                (b'<', b'>'),
                "frame {i} whole"
            );
        }
    }
}
