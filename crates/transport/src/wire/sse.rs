//! Server-Sent Events messages, without I/O: `id`, `event` and `data` lines, then a
//! blank line. Data is split into one `data:` line per line of its text, as the format
//! requires (compact JSON has none, so an event's data is usually one line).

/// Appends one SSE message to `out`; `id` is omitted when `None` (so a client's
/// `Last-Event-ID` stays where it was).
pub fn message(out: &mut Vec<u8>, event: &str, id: Option<u64>, data: &[u8]) {
    out.reserve(data.len() + event.len() + 32);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.to_string().as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// A comment line, which keeps idle connections (and proxies) from timing out.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_data_lines_and_omit_missing_ids() {
        let mut out = Vec::new();
        message(&mut out, "task_update", Some(7), b"{\"a\":1}");
        assert_eq!(out, b"id: 7\nevent: task_update\ndata: {\"a\":1}\n\n");
        out.clear();
        message(&mut out, "x", None, b"a\r\nb");
        assert_eq!(out, b"event: x\ndata: a\ndata: b\n\n");
    }
}
