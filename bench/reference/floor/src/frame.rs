//! WebSocket frames (RFC 6455), as much as this server needs: it writes complete
//! unmasked frames and reads the client's masked ones, fragmented or not.

use bytes::{BufMut, Bytes, BytesMut};

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// One complete server frame (FIN set, unmasked) carrying `payload`.
pub fn encode(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    out.put_u8(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.put_u8(n as u8),
        n @ 126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
    out.freeze()
}

/// One frame the client sent, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: BytesMut,
}

/// A frame longer than the limit.
#[derive(Debug, PartialEq, Eq)]
pub struct TooBig;

/// Takes the first complete frame off `buf`; `Ok(None)` until one has arrived.
pub fn parse(buf: &mut BytesMut, max_payload: usize) -> Result<Option<Frame>, TooBig> {
    let [b0, b1, ..] = buf[..] else {
        return Ok(None);
    };
    let (len, mut header) = match b1 & 0x7F {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut n = [0; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if len > max_payload as u64 {
        return Err(TooBig);
    }
    let masked = b1 & 0x80 != 0;
    let mask_at = header;
    if masked {
        header += 4;
    }
    let total = header + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut key = [0; 4];
    if masked {
        key.copy_from_slice(&buf[mask_at..mask_at + 4]);
    }
    let mut payload = buf.split_to(total).split_off(header);
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
    }
    Ok(Some(Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> BytesMut {
        let key = [0x12, 0x34, 0x56, 0x78];
        let mut out = BytesMut::new();
        out.put_u8(if fin { 0x80 } else { 0 } | opcode);
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

    #[test]
    fn server_frames_have_the_right_header() {
        assert_eq!(&encode(TEXT, b"2")[..], b"\x81\x012");
        let mid = encode(TEXT, &[b'x'; 330]);
        assert_eq!(&mid[..4], &[0x81, 126, 0x01, 0x4A]);
        assert_eq!(mid.len(), 334);
        let big = encode(TEXT, &[b'x'; 70_000]);
        assert_eq!(&big[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn client_frames_unmasked_one_at_a_time() {
        let long = vec![b'y'; 300];
        let mut buf = masked(TEXT, true, b"40{\"token\":\"t\"}");
        buf.extend_from_slice(&masked(TEXT, false, &long));
        buf.extend_from_slice(&masked(CONTINUATION, true, b"3"));
        let whole = buf.clone();
        let first = parse(&mut buf, 1000).unwrap().unwrap();
        assert_eq!((first.fin, first.opcode), (true, TEXT));
        assert_eq!(&first.payload[..], b"40{\"token\":\"t\"}");
        assert_eq!(
            &parse(&mut buf, 1000).unwrap().unwrap().payload[..],
            &long[..]
        );
        let last = parse(&mut buf, 1000).unwrap().unwrap();
        assert_eq!(
            (last.fin, last.opcode, &last.payload[..]),
            (true, CONTINUATION, &b"3"[..])
        );
        assert_eq!(parse(&mut buf, 1000), Ok(None));

        // Byte by byte: nothing until a frame is complete.
        let mut partial = BytesMut::new();
        let mut frames = 0;
        for b in whole {
            partial.put_u8(b);
            if parse(&mut partial, 1000).unwrap().is_some() {
                frames += 1;
            }
        }
        assert_eq!((frames, partial.len()), (3, 0));
        assert_eq!(parse(&mut masked(TEXT, true, &long), 100), Err(TooBig));
    }
}
