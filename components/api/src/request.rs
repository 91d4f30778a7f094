//! The parts of a request the routes read, with the body read under a size limit.

use futures::TryStreamExt;
use spin_sdk::http::{IncomingRequest, Method};
use vigil_core::error::ApiError;

/// Largest request body accepted. A batch of 1000 Celery events fits well within it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request, read.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    /// What the host lets a long-poll do instead of waiting (`None`: no host helps, as
    /// under `spin up`: wait here).
    pub park: Option<vigil_rules::park::Mode>,
    /// Where a parked request reads from when it names no cursor (`vigil-park-since`).
    pub park_since: Option<u64>,
    pub body: Vec<u8>,
}

impl Req {
    /// Reads `req`, refusing a body over [`MAX_BODY_BYTES`] without buffering it.
    pub async fn read(req: IncomingRequest) -> Result<Self, ApiError> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .into_iter()
                .next()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        let declared = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
        }
        let authorization = header("authorization");
        let park = header(vigil_rules::park::PARK_HEADER)
            .and_then(|v| vigil_rules::park::Mode::parse(v.trim()));
        let park_since =
            header(vigil_rules::park::SINCE_HEADER).and_then(|v| v.trim().parse().ok());
        let path_with_query = req.path_with_query().unwrap_or_else(|| "/".into());
        let (path, query) = match path_with_query.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (path_with_query, String::new()),
        };
        let method = req.method();
        let body = read_body(req).await?;
        Ok(Self {
            method,
            path,
            query,
            authorization,
            park,
            park_since,
            body,
        })
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }
}

async fn read_body(req: IncomingRequest) -> Result<Vec<u8>, ApiError> {
    let mut stream = req.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|_| ApiError::bad_request("could not read the request body"))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A query value, percent-decoded, `+` as a space (form encoding).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Req {
    /// An integer query parameter within `range`, `default` when absent, 422 otherwise.
    pub fn query_u64(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ApiError> {
        match self.query_param(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        name,
                        format!(
                            "{name} must be an integer from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    /// A boolean query parameter (`true`/`false`/`1`/`0`), `false` when absent.
    pub fn query_bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.query_param(name).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(_) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be true or false"),
            )),
        }
    }

    /// The body as a JSON object; an empty body is an empty object.
    pub fn json_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_slice(&self.body) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => Err(ApiError::bad_request("body must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request as the routes see it, for tests.
    pub fn req(method: Method, path_and_query: &str, body: &str) -> Req {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Req {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            authorization: None,
            park: None,
            park_since: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn query_parameters_are_decoded_and_checked() {
        let r = req(Method::Get, "/x?q=a%20b+c&n=7&flag&bad=%zz", "");
        assert_eq!(r.query_param("q").as_deref(), Some("a b c"));
        assert_eq!(r.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(r.query_u64("n", 1..=10, 3).unwrap(), 7);
        assert_eq!(r.query_u64("missing", 1..=10, 3).unwrap(), 3);
        let e = r.query_u64("n", 1..=5, 3).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (422, Some("n")));
        assert!(r.query_bool("flag").unwrap());
        assert!(!r.query_bool("missing").unwrap());
        assert_eq!(r.query_bool("q").unwrap_err().status, 422);
    }

    #[test]
    fn json_bodies_must_be_objects() {
        assert!(req(Method::Post, "/", "  ")
            .json_object()
            .unwrap()
            .is_empty());
        assert_eq!(
            req(Method::Post, "/", r#"{"a":1}"#).json_object().unwrap()["a"],
            1
        );
        assert_eq!(
            req(Method::Post, "/", "[1]")
                .json_object()
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            req(Method::Post, "/", "{oops")
                .json_object()
                .unwrap_err()
                .status,
            400
        );
    }
}
