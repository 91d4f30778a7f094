//! An HTTP/1.1 response body as it arrives (chunked, or delimited by the connection's
//! end) and the Server-Sent Events messages in it.

/// Turns the bytes read off the socket into body bytes.
#[derive(Debug)]
pub enum Body {
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunks),
    /// No framing: the body runs until the connection closes.
    Raw,
}

/// The chunked decoder's position.
#[derive(Debug, Default)]
pub struct Chunks {
    /// Body bytes left in the current chunk.
    left: usize,
    /// Bytes of the chunk's trailing CRLF still to skip.
    crlf: usize,
    /// A chunk-size line cut short by the read.
    line: Vec<u8>,
    /// The last (empty) chunk was seen.
    pub done: bool,
}

impl Body {
    /// Decodes `input`, appending body bytes to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Self::Raw => {
                out.extend_from_slice(input);
                Ok(())
            }
            Self::Chunked(c) => c.decode(input, out),
        }
    }
}

impl Chunks {
    fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !input.is_empty() && !self.done {
            if self.left > 0 {
                let n = self.left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.left -= n;
                input = &input[n..];
                if self.left == 0 {
                    self.crlf = 2;
                }
            } else if self.crlf > 0 {
                let n = self.crlf.min(input.len());
                self.crlf -= n;
                input = &input[n..];
            } else {
                let Some(end) = input.iter().position(|&b| b == b'\n') else {
                    self.line.extend_from_slice(input);
                    return Ok(());
                };
                self.line.extend_from_slice(&input[..end]);
                input = &input[end + 1..];
                let line = std::mem::take(&mut self.line);
                let text = String::from_utf8_lossy(&line);
                let size = text.trim().split(';').next().unwrap_or("");
                self.left = usize::from_str_radix(size, 16)
                    .map_err(|_| format!("bad chunk size line {text:?}"))?;
                self.done = self.left == 0;
            }
        }
        Ok(())
    }
}

/// One SSE message: its `event:` name (`message` when absent) and its data lines
/// joined by newlines.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// The event name.
    pub event: String,
    /// The data.
    pub data: String,
}

/// Takes every complete message (ended by a blank line) off the front of `buf`;
/// comments and heartbeats come back as nothing.
pub fn messages(buf: &mut Vec<u8>) -> Vec<Message> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(end) = blank_line(&buf[start..]) {
        let block = String::from_utf8_lossy(&buf[start..start + end.0]);
        if let Some(m) = parse(&block) {
            out.push(m);
        }
        start += end.1;
    }
    buf.drain(..start);
    out
}

/// Where the first message ends: (its length, the length with the blank line).
fn blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        match buf.get(at + 1) {
            Some(b'\n') => return Some((at, at + 2)),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some((at, at + 3)),
            _ => i = at + 1,
        }
    }
    None
}

fn parse(block: &str) -> Option<Message> {
    let mut event = None;
    let mut data: Option<String> = None;
    for line in block.lines().map(|l| l.trim_end_matches('\r')) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    Some(Message {
        event: event.unwrap_or_else(|| "message".to_owned()),
        data: data?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_decode_across_any_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n world!\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut body = Body::Chunked(Chunks::default());
            let mut out = Vec::new();
            body.decode(&wire[..split], &mut out).unwrap();
            body.decode(&wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello world!", "split at {split}");
            let Body::Chunked(c) = body else {
                unreachable!()
            };
            assert!(c.done);
        }
        let mut bad = Body::Chunked(Chunks::default());
        assert!(bad.decode(b"zz\r\n", &mut Vec::new()).is_err());
    }

    #[test]
    fn sse_messages_leave_the_incomplete_rest() {
        let mut buf =
            b": keep-alive\n\nid: 3\nevent: task_update\ndata: {\"a\":1}\n\ndata: x\r\ndata: y\r\n\r\nevent: par"
                .to_vec();
        let got = messages(&mut buf);
        assert_eq!(
            got,
            [
                Message {
                    event: "task_update".into(),
                    data: "{\"a\":1}".into()
                },
                Message {
                    event: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
        assert_eq!(buf, b"event: par");
    }
}
