//! The Engine.IO server: its sessions, and the HTTP entry point that starts them and
//! routes each request (`/socket.io/?EIO=4&transport=…[&sid=…]`) to its transport.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::session::{Session, Transport};
use super::{polling, websocket, Config, Handler};

/// Engine.IO's error codes, as its clients know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `transport` is neither `polling` nor `websocket`.
    TransportUnknown = 0,
    /// No session with that `sid`.
    SessionUnknown = 1,
    /// A method the transport does not take.
    BadMethod = 2,
    /// Anything else wrong with the request.
    BadRequest = 3,
    /// `EIO` is not 4.
    UnsupportedVersion = 5,
}

impl Refused {
    fn message(self) -> &'static str {
        match self {
            Self::TransportUnknown => "Transport unknown",
            Self::SessionUnknown => "Session ID unknown",
            Self::BadMethod => "Bad handshake method",
            Self::BadRequest => "Bad request",
            Self::UnsupportedVersion => "Unsupported protocol version",
        }
    }

    /// The 400 answer with `{"code","message"}`.
    pub fn response(self) -> Response<Full<Bytes>> {
        let body = format!(
            r#"{{"code":{},"message":"{}"}}"#,
            self as u8,
            self.message()
        );
        Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    }
}

/// Every session, and the application.
pub struct Server<H: Handler> {
    /// The application.
    pub handler: H,
    /// Limits and timings.
    pub config: Config,
    sessions: Mutex<HashMap<Box<str>, Arc<Session<H>>>>,
}

/// A fresh random id: 16 bytes of the OS's randomness, base64url (22 characters).
/// Long-polling requests are matched to their session by it alone, so it must not be
/// guessable.
pub fn new_id() -> String {
    let mut raw = [0u8; 16];
    if getrandom::fill(&mut raw).is_err() {
        // No randomness source at all: refuse to make guessable ids silently.
        tracing::error!("the OS gave no random bytes for a session id");
    }
    B64.encode(raw)
}

impl<H: Handler> Server<H> {
    /// A server for `handler`.
    pub fn new(handler: H, config: Config) -> Arc<Self> {
        Arc::new(Self {
            handler,
            config,
            sessions: Mutex::default(),
        })
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<Session<H>>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves one request to the Engine.IO path.
    pub async fn handle<B>(self: &Arc<Self>, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let query = Query::parse(req.uri().query().unwrap_or(""));
        if query.eio.as_deref() != Some("4") {
            return Refused::UnsupportedVersion.response();
        }
        let session = match &query.sid {
            None => None,
            Some(sid) => match self.session(sid) {
                Some(s) => Some(s),
                None => return Refused::SessionUnknown.response(),
            },
        };
        match (query.transport.as_deref(), req.method(), session) {
            (Some("polling"), &Method::GET, None) => polling::open(self),
            (Some("polling"), &Method::GET, Some(s)) => polling::poll(self, &s).await,
            (Some("polling"), &Method::POST, Some(s)) => polling::post(self, &s, req).await,
            (Some("polling"), _, _) => Refused::BadMethod.response(),
            (Some("websocket"), &Method::GET, s) => websocket::upgrade(self, s, req),
            (Some("websocket"), _, _) => Refused::BadMethod.response(),
            _ => Refused::TransportUnknown.response(),
        }
    }

    /// Starts a session on `transport`.
    pub fn create(self: &Arc<Self>, transport: Transport) -> Arc<Session<H>> {
        let session = Arc::new(Session::new(
            new_id().into(),
            transport,
            self.config.queue_capacity,
        ));
        self.sessions().insert(session.sid.clone(), session.clone());
        session
    }

    /// The session `sid`, if it is open.
    pub fn session(&self, sid: &str) -> Option<Arc<Session<H>>> {
        self.sessions().get(sid).cloned()
    }

    /// Drops a closed session from the table.
    pub fn forget(&self, sid: &str) {
        self.sessions().remove(sid);
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every session (e.g. on shutdown); their clients are disconnected.
    pub fn close_all(&self, reason: &str) {
        let all: Vec<_> = self.sessions().values().cloned().collect();
        for session in all {
            session.close(self, reason);
        }
    }
}

/// The query parameters Engine.IO reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Query {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

impl Query {
    fn parse(query: &str) -> Self {
        let mut q = Self::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "EIO" => &mut q.eio,
                "transport" => &mut q.transport,
                "sid" => &mut q.sid,
                _ => continue,
            };
            // Ids are base64url and the other values plain words: nothing to decode.
            *slot = Some(v.to_owned());
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_version_transport_and_session() {
        let q = Query::parse("EIO=4&transport=polling&t=Pabc&sid=xyz");
        assert_eq!(
            q,
            Query {
                eio: Some("4".into()),
                transport: Some("polling".into()),
                sid: Some("xyz".into())
            }
        );
        assert_eq!(Query::parse(""), Query::default());
    }

    #[test]
    fn ids_are_random_and_url_safe() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn refusals_carry_engine_io_codes() {
        let r = Refused::SessionUnknown.response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
