//! WebSocket frames (RFC 6455) as a server sends and reads them, without I/O.
//!
//! The server's frames are never masked, so a frame is a header of 2–10 bytes followed by
//! the payload unchanged: [`header`] writes the header alone, and a writer sends it next
//! to payload bytes shared by every connection (one `writev`, no copy). Client frames
//! are always masked; [`Reader`] takes them off a read buffer and reassembles
//! fragmented messages, enforcing the protocol's rules and a size limit.

use bytes::{Buf, BytesMut};

/// Continuation of a fragmented message.
pub const CONTINUATION: u8 = 0x0;
/// A UTF-8 text message.
pub const TEXT: u8 = 0x1;
/// A binary message.
pub const BINARY: u8 = 0x2;
/// Close, with an optional code and reason.
pub const CLOSE: u8 = 0x8;
/// Ping; answered by a pong with the same payload.
pub const PING: u8 = 0x9;
/// Pong.
pub const PONG: u8 = 0xA;

/// Longest frame header: 2 bytes, then 8 of extended length (servers send no mask).
pub const MAX_HEADER: usize = 10;
/// Close code: the endpoint is going away or the subscription ended normally.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: the peer broke the protocol.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// Close code: a text message was not UTF-8.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code: a message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Writes the header of an unmasked, final frame of `len` payload bytes into `out`;
/// returns how many bytes it took.
pub fn header(opcode: u8, len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = 0x80 | opcode;
    match len {
        0..=125 => {
            out[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    }
}

/// One whole frame (header and payload) as owned bytes; for control frames and
/// replies, which are rare and small.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut head = [0; MAX_HEADER];
    let n = header(opcode, payload.len(), &mut head);
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
    out
}

/// A close frame with `code` and `reason` (cut to fit a control frame's 125 bytes).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(CLOSE, &payload)
}

/// What the client sent, a whole message or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (checked to be UTF-8).
    Text(BytesMut),
    /// A binary message.
    Binary(BytesMut),
    /// A ping: answer with a pong of the same payload.
    Ping(BytesMut),
    /// A pong.
    Pong,
    /// A close, with the client's code if it gave one.
    Close(Option<u16>),
}

/// Why the connection must end: the close code to send and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Close code to answer with.
    pub code: u16,
    /// What was wrong.
    pub reason: &'static str,
}

fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// Reassembles client messages from frames, one read buffer at a time.
#[derive(Debug, Default)]
pub struct Reader {
    /// A fragmented message so far: its opcode and bytes.
    partial: Option<(u8, BytesMut)>,
}

impl Reader {
    /// Takes the next message or control frame off `buf`; `Ok(None)` until one is
    /// complete. Messages over `max` bytes, unmasked frames, reserved bits or opcodes,
    /// bad control frames and text that is not UTF-8 are violations.
    pub fn next(&mut self, buf: &mut BytesMut, max: usize) -> Result<Option<Incoming>, Violation> {
        loop {
            let Some((fin, opcode, payload)) = take_frame(buf, max)? else {
                return Ok(None);
            };
            if opcode >= CLOSE {
                return control(fin, opcode, payload).map(Some);
            }
            let message = match (opcode, self.partial.take()) {
                (CONTINUATION, None) => {
                    return Err(violation(CLOSE_PROTOCOL, "continuation without a message"))
                }
                (CONTINUATION, Some((first, mut so_far))) => {
                    if so_far.len() + payload.len() > max {
                        return Err(violation(CLOSE_TOO_BIG, "message too big"));
                    }
                    so_far.extend_from_slice(&payload);
                    (first, so_far)
                }
                (TEXT | BINARY, None) => (opcode, payload),
                (TEXT | BINARY, Some(_)) => {
                    return Err(violation(
                        CLOSE_PROTOCOL,
                        "new message inside a fragmented one",
                    ))
                }
                _ => return Err(violation(CLOSE_PROTOCOL, "reserved opcode")),
            };
            if !fin {
                self.partial = Some(message);
                continue;
            }
            return match message {
                (TEXT, bytes) if std::str::from_utf8(&bytes).is_err() => {
                    Err(violation(CLOSE_INVALID_DATA, "text message is not UTF-8"))
                }
                (TEXT, bytes) => Ok(Some(Incoming::Text(bytes))),
                (_, bytes) => Ok(Some(Incoming::Binary(bytes))),
            };
        }
    }
}

fn control(fin: bool, opcode: u8, payload: BytesMut) -> Result<Incoming, Violation> {
    if !fin || payload.len() > 125 {
        return Err(violation(CLOSE_PROTOCOL, "bad control frame"));
    }
    match opcode {
        CLOSE => Ok(Incoming::Close(
            (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
        )),
        PING => Ok(Incoming::Ping(payload)),
        PONG => Ok(Incoming::Pong),
        _ => Err(violation(CLOSE_PROTOCOL, "reserved opcode")),
    }
}

/// Takes one complete client frame off `buf`, unmasked: (fin, opcode, payload).
fn take_frame(buf: &mut BytesMut, max: usize) -> Result<Option<(bool, u8, BytesMut)>, Violation> {
    let [b0, b1, ..] = buf[..] else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(violation(
            CLOSE_PROTOCOL,
            "reserved bits set (no extension was agreed)",
        ));
    }
    if b1 & 0x80 == 0 {
        return Err(violation(CLOSE_PROTOCOL, "client frames must be masked"));
    }
    let (len, at) = match b1 & 0x7F {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default()),
            10,
        ),
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if len > max as u64 {
        return Err(violation(CLOSE_TOO_BIG, "message too big"));
    }
    let total = at + 4 + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let key: [u8; 4] = buf[at..at + 4].try_into().unwrap_or_default();
    buf.advance(at + 4);
    let mut payload = buf.split_to(len as usize);
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
    Ok(Some((b0 & 0x80 != 0, b0 & 0x0F, payload)))
}

/// A client frame with first byte `first` (FIN and opcode): masked, as browsers send
/// them. For the tests of this module and of the stream driver.
#[cfg(test)]
pub(crate) fn masked(first: u8, payload: &[u8]) -> BytesMut {
    use bytes::BufMut;
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut out = BytesMut::new();
    out.put_u8(first);
    match payload.len() {
        n @ 0..=125 => out.put_u8(0x80 | n as u8),
        n => {
            out.put_u8(0x80 | 126);
            out.put_u16(n as u16);
        }
    }
    out.put_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn headers_take_the_shortest_length_form() {
        let mut h = [0; MAX_HEADER];
        let n = header(TEXT, 1, &mut h);
        assert_eq!(&h[..n], &[0x81, 1]);
        let n = header(BINARY, 330, &mut h);
        assert_eq!(&h[..n], &[0x82, 126, 0x01, 0x4A]);
        assert_eq!(header(TEXT, 70_000, &mut h), 10);
        assert_eq!(
            (h[1], u64::from_be_bytes(h[2..10].try_into().unwrap())),
            (127, 70_000)
        );
        assert_eq!(frame(TEXT, b"2"), b"\x81\x012");
        let close = close_frame(4000, &"é".repeat(100));
        assert_eq!(close[1] as usize, close.len() - 2);
        assert!(close.len() - 2 <= 125, "a control frame fits 125 bytes");
    }

    #[test]
    fn messages_arrive_whole_whatever_the_reads() {
        let long = vec![b'y'; 300];
        let mut wire = masked(0x80 | TEXT, b"40{\"token\":\"t\"}");
        wire.extend_from_slice(&masked(BINARY, &long[..100]));
        wire.extend_from_slice(&masked(0x80 | PING, b"hi"));
        wire.extend_from_slice(&masked(0x80 | CONTINUATION, &long[100..]));
        wire.extend_from_slice(&masked(0x80 | CLOSE, &1000u16.to_be_bytes()));
        let mut reader = Reader::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(m) = reader.next(&mut buf, 1000).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            [
                Incoming::Text(BytesMut::from(&b"40{\"token\":\"t\"}"[..])),
                Incoming::Ping(BytesMut::from(&b"hi"[..])),
                Incoming::Binary(BytesMut::from(&long[..])),
                Incoming::Close(Some(1000)),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn protocol_violations_end_the_connection_with_a_code() {
        let cases: [(BytesMut, u16); 7] = [
            (masked(0x80 | TEXT, &[0xFF, 0xFE]), CLOSE_INVALID_DATA),
            (masked(0x80 | CONTINUATION, b"x"), CLOSE_PROTOCOL),
            (masked(0xC0 | TEXT, b"x"), CLOSE_PROTOCOL),
            (masked(0x80 | 0x3, b"x"), CLOSE_PROTOCOL),
            (masked(PING, b"x"), CLOSE_PROTOCOL),
            (masked(0x80 | TEXT, &[b'a'; 200]), CLOSE_TOO_BIG),
            (BytesMut::from(&b"\x81\x01x"[..]), CLOSE_PROTOCOL),
        ];
        for (mut buf, code) in cases {
            let got = Reader::default().next(&mut buf, 100);
            assert_eq!(got.unwrap_err().code, code);
        }
        // A fragment that grows a message past the limit.
        let mut buf = masked(TEXT, &[b'a'; 60]);
        buf.extend_from_slice(&masked(0x80 | CONTINUATION, &[b'a'; 60]));
        let mut reader = Reader::default();
        assert_eq!(reader.next(&mut buf, 100).unwrap_err().code, CLOSE_TOO_BIG);
    }
}
