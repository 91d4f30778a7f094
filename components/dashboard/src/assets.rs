//! The page's files, embedded at compile time: no file system, no build step, no CDN.

/// One embedded file.
pub struct Asset {
    /// Name under `/dashboard/`, e.g. `app.js`.
    pub name: &'static str,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
    /// Strong validator: a hash of the bytes, fixed at compile time, so a browser
    /// revalidates cheaply (304) and never runs a stale `app.js` after an upgrade.
    pub etag: &'static str,
}

macro_rules! asset {
    ($name:literal, $ctype:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../assets/", $name));
        const HASH: [u8; 18] = etag_of(BODY);
        Asset {
            name: $name,
            content_type: $ctype,
            body: BODY,
            // Infallible: `etag_of` writes only ASCII hex digits and quotes.
            etag: match std::str::from_utf8(&HASH) {
                Ok(s) => s,
                Err(_) => "\"0\"",
            },
        }
    }};
}

/// Every file the page is made of.
pub static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("client.js", "text/javascript; charset=utf-8"),
    asset!("table.js", "text/javascript; charset=utf-8"),
    asset!("views.js", "text/javascript; charset=utf-8"),
    asset!("details.js", "text/javascript; charset=utf-8"),
    asset!("chart.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The asset at `path` (the part after `/dashboard`); `/` and `` are the page.
pub fn find(path: &str) -> Option<&'static Asset> {
    let name = path.trim_start_matches('/');
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS.iter().find(|a| a.name == name)
}

/// `"` + 16 hex digits of FNV-1a/64 + `"`, computed by the compiler.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut j = 0;
    while j < 16 {
        out[1 + j] = HEX[((hash >> (60 - 4 * j)) & 0xf) as usize];
        j += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_default_and_unknown_names_are_none() {
        assert_eq!(find("/").map(|a| a.name), Some("index.html"));
        assert_eq!(find("").map(|a| a.name), Some("index.html"));
        assert_eq!(
            find("/app.js").map(|a| a.content_type),
            Some("text/javascript; charset=utf-8")
        );
        assert!(find("/../Cargo.toml").is_none());
        assert!(find("/nope.js").is_none());
    }

    #[test]
    fn etags_are_quoted_hex_and_differ_by_content() {
        let a = etag_of(b"a");
        let b = etag_of(b"b");
        assert_ne!(a, b);
        assert_eq!(a[0], b'"');
        assert_eq!(a[17], b'"');
    }
}
