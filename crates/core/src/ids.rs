//! Which ids Vigil accepts (task uuids, worker hostnames, queue names) and how a URL
//! path names them.
//!
//! An id is 1–[`MAX_ID_LEN`] bytes of UTF-8 with no control characters, and is not `.`
//! or `..`. Anything else is allowed — `/`, spaces, `?`, `#`, `%`, non-ASCII — and every
//! accepted id is read back by its URL-encoded form: `GET /api/v1/tasks/a%2Fb` reads
//! the task `a/b` ([`encode_segment`] is the encoding; each path segment is decoded
//! with [`decode_segment`] before routing). `.` and `..` are refused because URL
//! libraries and browsers remove them from paths, even percent-encoded, so no client
//! could read such a task back.

/// Longest id accepted; ids are key-value keys.
pub const MAX_ID_LEN: usize = 255;

/// Why an id is refused (completes "`<field>` …").
pub fn check(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("must be 1–{MAX_ID_LEN} bytes long"));
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    if id == "." || id == ".." {
        return Err("must not be `.` or `..` (no URL can name them)".to_owned());
    }
    Ok(())
}

/// One percent-decoded path segment (`+` stays `+`, as in paths), or `None` when it is
/// not valid percent-encoded UTF-8 (`%` without two hex digits, or bad UTF-8).
pub fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `id` as one path segment: everything but RFC 3986's unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`) percent-encoded, like JavaScript's `encodeURIComponent`.
pub fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of issue 11, and more that need encoding.
    const AWKWARD: [&str; 12] = [
        "a/b",
        "with space",
        "what?",
        "hash#tag",
        "lit%2Fral",
        "../up",
        "ünïcødé-任务",
        "a+b",
        "%",
        "/",
        " ",
        "emoji 🚀",
    ];

    #[test]
    fn every_accepted_id_round_trips_through_its_encoding() {
        for id in AWKWARD {
            assert_eq!(check(id), Ok(()), "{id}");
            let seg = encode_segment(id);
            assert!(!seg.contains(['/', '?', '#', ' ']), "{seg}");
            assert_eq!(decode_segment(&seg).as_deref(), Some(id), "{id}");
        }
    }

    #[test]
    fn refuses_what_no_url_can_name() {
        for id in ["", ".", "..", "tab\there", "nl\n", "nul\0"] {
            assert!(check(id).is_err(), "{id:?}");
        }
        assert!(check(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert!(check(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(check("...").is_ok());
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode_segment("plain").as_deref(), Some("plain"));
        assert_eq!(decode_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_segment("%e4%BB%bb").as_deref(), Some("任"));
        for bad in ["%", "%2", "%zz", "%FF", "a%2"] {
            assert_eq!(decode_segment(bad), None, "{bad}");
        }
    }
}
