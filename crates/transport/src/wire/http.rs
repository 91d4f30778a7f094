//! Telling, from the bytes a connection sent, a plain `GET` that the host serves on the
//! connection itself, off the HTTP server (a push stream, a long-poll), from everything
//! else (handed to the HTTP server with those bytes put back). No I/O: [`sniff`] looks
//! at what was read so far.
//!
//! Only the simplest requests are taken: HTTP/1.1, the whole head, no body, no upgrade,
//! no `Expect`, every header valid. Anything else goes to the HTTP server, which answers
//! it exactly as before (its refusals included).

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Uri};

/// Largest request head taken off the connection: room for long tokens in the query
/// and a browser's headers. A bigger head goes to the HTTP server (which refuses what
/// is past its own limits with the usual JSON errors).
pub const MAX_HEAD: usize = 16 * 1024;

/// Most headers parsed; a request with more goes to the HTTP server.
const MAX_HEADERS: usize = 64;

/// The `date` header line every response written off the HTTP server carries, as the
/// HTTP server's own do (RFC 9110 §6.6.1: a server with a clock sends one).
pub fn date_line() -> String {
    format!(
        "date: {}\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    )
}

/// The head of a request taken off the connection.
#[derive(Debug)]
pub struct Head {
    /// Path and query.
    pub uri: Uri,
    /// Every header.
    pub headers: HeaderMap,
    /// Bytes the head took: what the buffer holds past them was sent after it.
    pub len: usize,
}

/// What a connection's first bytes are.
#[derive(Debug)]
pub enum Sniffed {
    /// Possibly the wanted request: read more.
    More,
    /// Anything else: for the HTTP server.
    Other,
    /// The whole head of a wanted `GET`.
    Head(Head),
}

/// What `buf` (everything the connection sent so far) is, for a `GET` whose request
/// target (path and query, as sent) `wanted` accepts. `wanted` is asked once the
/// request line's target is whole; anything that is not a `GET` is told at once.
pub fn sniff(buf: &[u8], wanted: impl Fn(&str) -> bool) -> Sniffed {
    const GET: &[u8] = b"GET /";
    let n = GET.len().min(buf.len());
    if buf[..n] != GET[..n] {
        return Sniffed::Other;
    }
    let start = GET.len() - 1;
    let Some(end) = buf
        .get(start..)
        .and_then(|t| t.iter().position(|b| *b == b' '))
    else {
        return match buf.len() < MAX_HEAD && !buf.contains(&b'\n') {
            true => Sniffed::More,
            false => Sniffed::Other,
        };
    };
    match std::str::from_utf8(&buf[start..start + end]) {
        Ok(target) if wanted(target) => {}
        _ => return Sniffed::Other,
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => head(&req, n).map_or(Sniffed::Other, Sniffed::Head),
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Sniffed::More,
        _ => Sniffed::Other,
    }
}

/// Whether `target` is `path`, with or without a query.
pub fn is_path(target: &str, path: &str) -> bool {
    target
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
}

/// The head of a parsed request (`len` bytes), if it is one taken off the connection.
fn head(req: &httparse::Request<'_, '_>, len: usize) -> Option<Head> {
    if req.version != Some(1) {
        return None;
    }
    let uri: Uri = req.path?.parse().ok()?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let body = headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v != "0");
    let special = [http::header::UPGRADE, http::header::EXPECT]
        .iter()
        .any(|h| headers.contains_key(h));
    (!body && !special).then_some(Head { uri, headers, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(buf: &str) -> Sniffed {
        sniff(buf.as_bytes(), |target| is_path(target, "/events"))
    }

    #[test]
    fn a_plain_get_of_the_path_is_taken_whole() {
        let req = "GET /events?topics=a,b&access_token=t HTTP/1.1\r\nHost: x\r\n\
                   Last-Event-ID: 7\r\nAccept-Encoding: gzip\r\n\r\n";
        let Sniffed::Head(head) = sniffed(req) else {
            panic!("taken")
        };
        assert_eq!(head.uri.path(), "/events");
        assert_eq!(head.uri.query(), Some("topics=a,b&access_token=t"));
        assert_eq!(head.headers["last-event-id"], "7");
        assert_eq!(head.headers["accept-encoding"], "gzip");
        assert_eq!(head.len, req.len());
    }

    #[test]
    fn every_prefix_of_it_asks_for_more() {
        let req = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
        for n in 0..req.len() {
            assert!(matches!(sniffed(&req[..n]), Sniffed::More), "{n}");
        }
        assert!(matches!(sniffed(req), Sniffed::Head(_)));
    }

    #[test]
    fn everything_else_goes_to_the_http_server() {
        for req in [
            "POST /events HTTP/1.1\r\n\r\n",
            "GET /eventsx HTTP/1.1\r\n\r\n",
            "GET /events/x HTTP/1.1\r\n\r\n",
            "GET /api/v1/tasks HTTP/1.1\r\n\r\n",
            "GET /events HTTP/1.0\r\n\r\n",
            "GET /events HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "GET /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /events HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET /events HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /events HTTP/1.1\r\nbad header\r\n\r\n",
            "\u{16}\u{3}\u{1}",
        ] {
            assert!(matches!(sniffed(req), Sniffed::Other), "{req:?}");
        }
        assert!(matches!(sniffed("PUT"), Sniffed::Other), "told early");
        assert!(
            matches!(sniffed("GET /ew "), Sniffed::Other),
            "told by the target"
        );
        assert!(
            matches!(sniffed("GET /events\r\n"), Sniffed::Other),
            "no version"
        );
    }

    #[test]
    fn bytes_sent_after_the_head_are_left_to_the_caller() {
        let first = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
        let both = format!("{first}GET /api/v1/tasks HTTP/1.1\r\n\r\n");
        let Sniffed::Head(head) = sniffed(&both) else {
            panic!("taken")
        };
        assert_eq!(head.len, first.len());
    }

    #[test]
    fn targets_are_paths_with_or_without_a_query() {
        assert!(is_path("/events", "/events"));
        assert!(is_path("/events?since=1", "/events"));
        assert!(!is_path("/events/x", "/events"));
        assert!(!is_path("/eventsx?since=1", "/events"));
    }

    #[test]
    fn a_head_past_the_limit_goes_to_the_http_server() {
        let mut req = String::from("GET /events HTTP/1.1\r\nX-Long: ");
        assert!(matches!(sniffed(&req), Sniffed::More));
        req.push_str(&"a".repeat(MAX_HEAD));
        assert!(matches!(sniffed(&req), Sniffed::Other));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let req = format!("GET /events HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(sniffed(&req), Sniffed::Other));
    }
}
