//! Vigil's push side: every long-lived connection and what it receives.
//!
//! - [`hub`]: every subscriber, and the one task that asks the dispatch component
//!   ([`dispatch`]) what each of them receives; bounded queues per connection.
//! - [`follow`]: feeds the hub from the event log (`vigil-log`), each event once.
//! - [`sse`], [`ws`], [`socketio`]: the transports. All authenticate the same way
//!   (this module) and subscribe through the hub; [`resume`] replays what a reconnecting
//!   client missed.
//! - [`state`]: what the transports share ([`PushState`]), and the [`state::Components`]
//!   they ask for snapshots.
//! - [`overflow`]: a burst resets a reading client rather than disconnecting it.
//! - [`config`]: per-connection limits; [`metrics`]: Prometheus metrics of all this.
#![deny(missing_docs)]

pub mod config;
pub mod dispatch;
pub mod follow;
pub mod hub;
pub mod metrics;
pub mod overflow;
pub mod resume;
pub mod socketio;
pub mod sse;
pub mod state;
pub mod ws;

pub use state::PushState;

use serde::Deserialize;
use vigil_core::auth::{self, Claims, Verifier};
use vigil_core::error::ApiError;

use crate::dispatch::{Encoding, Filter};
use crate::hub::Spec;
use vigil_runtime::error::HttpError;

/// Query parameters both transports read.
#[derive(Debug, Default, Deserialize)]
pub struct PushQuery {
    /// Token, for clients that cannot set headers (EventSource, browsers' WebSocket).
    pub access_token: Option<String>,
    /// Comma-separated topics/rooms, e.g. `celery:tasks`.
    pub topics: Option<String>,
    /// Comma-separated queues.
    pub queues: Option<String>,
    /// Comma-separated states.
    pub states: Option<String>,
    /// Comma-separated task ids.
    pub ids: Option<String>,
    /// `json` (default) or `msgpack` (WebSocket only).
    pub encoding: Option<String>,
    /// Resume after this sequence number (SSE clients may send `Last-Event-ID` instead).
    pub since: Option<u64>,
}

fn list(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The token a push connection runs on. It is checked again for as long as the
/// connection lives: when it expires the subscription ends with `auth-error`, unless the
/// client sent a fresh one first (WebSocket and Socket.IO `refresh`).
#[derive(Debug, Clone)]
pub struct Authorized {
    /// Its verified claims.
    pub claims: Claims,
    /// The token itself, for requests the host makes on the client's behalf.
    pub token: String,
}

impl Authorized {
    /// When the token expires, on tokio's clock. A connection arms one timer with it
    /// and resets that timer on refresh, rather than a timer per message.
    pub fn deadline(&self) -> tokio::time::Instant {
        let left = self.claims.exp.saturating_sub(now_secs());
        tokio::time::Instant::now() + std::time::Duration::from_secs(left)
    }

    /// A fresh token for the same connection: valid, for the same user, and for a role
    /// that may still read. The role may change; the caller applies what it implies.
    pub fn refresh(&self, token: &str, verifier: &Verifier) -> Result<Self, ApiError> {
        let next = verify_reader(token, verifier)?;
        if next.claims.sub != self.claims.sub {
            return Err(ApiError::forbidden(
                "a refresh token must be for the same user as the connection",
            ));
        }
        Ok(next)
    }
}

/// The caller's claims from `Authorization: Bearer` or `access_token`; readers only.
pub fn authenticate(
    header: Option<&str>,
    query: &PushQuery,
    verifier: &Verifier,
) -> Result<Authorized, HttpError> {
    let token = match (header, &query.access_token) {
        (Some(h), _) => auth::bearer(Some(h))?,
        (None, Some(t)) => t.as_str(),
        (None, None) => return Err(auth::TokenError::Missing.into()),
    };
    Ok(verify_reader(token, verifier)?)
}

fn verify_reader(token: &str, verifier: &Verifier) -> Result<Authorized, ApiError> {
    let claims = verifier.verify(token, now_secs())?;
    if !claims.role.can_read() {
        return Err(ApiError::forbidden(
            "push endpoints need role viewer or admin",
        ));
    }
    Ok(Authorized {
        claims,
        token: token.to_owned(),
    })
}

/// Seed 003's `auth-error` payload: `{"code","message"}`, the codes REST uses.
pub fn auth_error(e: &ApiError) -> serde_json::Value {
    serde_json::json!({ "code": e.code, "message": e.message, "status": e.status })
}

/// The `auth-error` of a connection whose token ran out: code `token_expired`, so a
/// client can tell it from a refusal and refresh.
pub fn token_expired() -> ApiError {
    ApiError {
        code: "token_expired",
        ..ApiError::from(auth::TokenError::Expired)
    }
}

/// Whether `seq` duplicates what a resumed connection already replayed up to `upto`;
/// host-made control messages carry no sequence number and are never duplicates.
pub fn replayed(seq: u64, upto: u64) -> bool {
    seq != 0 && seq <= upto
}

/// The subscription a query asks for; non-admins only ever see their own tasks.
pub fn spec(claims: &Claims, query: &PushQuery, binary_ok: bool) -> Result<Spec, HttpError> {
    let encoding = match query.encoding.as_deref() {
        None | Some("json") => Encoding::Json,
        Some("msgpack") if binary_ok => Encoding::Msgpack,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "encoding",
                format!("unsupported encoding `{other}`"),
            )
            .into())
        }
    };
    Ok(Spec {
        filter: Some(Filter {
            topics: list(&query.topics),
            queues: list(&query.queues),
            states: list(&query.states),
            keys: list(&query.ids),
            owner: match claims.sees() {
                vigil_rules::Sees::Own(user) => Some(user.to_owned()),
                vigil_rules::Sees::All => None,
            },
        }),
        encoding,
        gzip: false,
        heartbeat: true,
    })
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
