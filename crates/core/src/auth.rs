//! JWT tokens: the claims Vigil reads, what each role may do, verifying a token with the
//! configured key ([`Verifier`]), and minting HS256 tokens for set-up ([`sign`]).
//!
//! The algorithm is pinned by configuration ([`KeyConfig::algorithm`]): a token signed
//! with any other algorithm is refused, whatever its header says.

mod config;
#[cfg(test)]
mod tests;
mod verifier;

pub use config::{KeyConfig, KeyError};
pub use verifier::Verifier;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// How far a token's `exp` and `nbf` may be off from this server's clock and still be
/// honoured: small, to forgive clock skew between the identity provider and Vigil
/// without keeping an expired token alive noticeably longer.
pub const CLOCK_LEEWAY_SECS: u64 = 5;

/// Spin variable holding the host's own credential: `vigil serve` sets it to a random
/// value at each start and presents it as the bearer of its internal calls (the worker
/// sweep), which must work whatever `jwt_algorithm` is, even where the host cannot mint
/// tokens. Empty (as under `spin up`): no bearer is the host's.
pub const HOST_TOKEN_VARIABLE: &str = "host_token";

/// The user id of the host's internal calls.
pub const HOST_SUBJECT: &str = "vigil-host";

/// Whether `presented` is the host's credential `configured` (compared in constant time,
/// so response timing does not reveal it byte by byte).
pub fn is_host_token(presented: &str, configured: &str) -> bool {
    let (a, b) = (presented.as_bytes(), configured.as_bytes());
    !b.is_empty() && a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Who a token belongs to and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything and performs manual actions.
    Admin,
    /// Reads its own tasks and jobs.
    Viewer,
    /// Reports events through the ingest API.
    Producer,
}

impl Role {
    /// Parses `admin`, `viewer` or `producer`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "viewer" => Some(Self::Viewer),
            "producer" => Some(Self::Producer),
            _ => None,
        }
    }

    /// The role's name, as in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Producer => "producer",
        }
    }

    /// May read state and subscribe to events.
    pub fn can_read(self) -> bool {
        matches!(self, Self::Admin | Self::Viewer)
    }

    /// May report events.
    pub fn can_ingest(self) -> bool {
        matches!(self, Self::Producer | Self::Admin)
    }
}

/// The claims Vigil reads from a token. Others (`iss`, `aud`, `jti`, …) may be present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    #[serde(default)]
    pub iat: u64,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Claims for `sub` with `role`, issued at `now` and valid for `ttl` seconds.
    pub fn new(sub: impl Into<String>, role: Role, now: u64, ttl: u64) -> Self {
        Self {
            sub: sub.into(),
            role,
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: None,
        }
    }
}

impl Claims {
    /// What the holder may see of others' data (`vigil_rules::may_see`): a viewer its own
    /// tasks and the public topics; admins everything; producers, who may read only the
    /// `commands` topic (checked where they read), every command.
    pub fn sees(&self) -> vigil_rules::Sees<'_> {
        match self.role {
            Role::Viewer => vigil_rules::Sees::Own(&self.sub),
            Role::Admin | Role::Producer => vigil_rules::Sees::All,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was presented.
    #[error("missing bearer token")]
    Missing,
    /// Not three base64url parts with JSON inside.
    #[error("malformed token")]
    Malformed,
    /// Signed with another algorithm than the one this server is configured for.
    #[error("unsupported token algorithm `{got}`; this server accepts only {want}")]
    UnsupportedAlgorithm {
        /// The token header's `alg`.
        got: String,
        /// The configured algorithm.
        want: &'static str,
    },
    /// The token names a key (`kid`) the configured key set does not hold.
    #[error("unknown token key id")]
    UnknownKey,
    /// The signature does not match the configured key.
    #[error("invalid token signature")]
    BadSignature,
    /// The claims are not what Vigil needs (`sub`, `role`, `exp`).
    #[error("unusable token claims: {0}")]
    Claims(String),
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Before its `nbf`.
    #[error("token not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    #[error("token audience is not accepted")]
    WrongAudience,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::unauthorized(e.to_string())
    }
}

/// Signs `claims` with HS256 (what `vigil token` and the tests mint).
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    verifier::sign_hmac(claims, jsonwebtoken::Algorithm::HS256, secret)
}

/// The token of an `Authorization: Bearer …` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, TokenError> {
    let value = header.ok_or(TokenError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(token.trim())
}

/// Checks `exp` and `nbf` against `now`, with [`CLOCK_LEEWAY_SECS`] either way.
fn check_times(claims: &Claims, now: u64) -> Result<(), TokenError> {
    if claims.exp.saturating_add(CLOCK_LEEWAY_SECS) <= now {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(CLOCK_LEEWAY_SECS))
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(TokenError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(TokenError::Malformed));
        assert_eq!(bearer(Some("Bearer")), Err(TokenError::Malformed));
    }

    #[test]
    fn host_token_matches_only_itself_and_never_when_unset() {
        assert!(is_host_token("abc123", "abc123"));
        assert!(!is_host_token("abc124", "abc123"));
        assert!(!is_host_token("abc12", "abc123"));
        assert!(!is_host_token("", ""));
    }

    #[test]
    fn roles() {
        assert!(Role::Viewer.can_read() && !Role::Viewer.can_ingest());
        assert!(Role::Producer.can_ingest() && !Role::Producer.can_read());
        assert!(Role::Admin.can_read() && Role::Admin.can_ingest());
    }

    #[test]
    fn times_have_a_small_leeway_both_ways() {
        let c = Claims::new("a", Role::Viewer, 100, 100);
        assert_eq!(check_times(&c, 199), Ok(()));
        assert_eq!(check_times(&c, 200 + CLOCK_LEEWAY_SECS - 1), Ok(()));
        assert_eq!(
            check_times(&c, 200 + CLOCK_LEEWAY_SECS),
            Err(TokenError::Expired)
        );
        let early = Claims {
            nbf: Some(150),
            ..c
        };
        assert_eq!(check_times(&early, 150 - CLOCK_LEEWAY_SECS), Ok(()));
        assert_eq!(
            check_times(&early, 149 - CLOCK_LEEWAY_SECS),
            Err(TokenError::NotYetValid)
        );
    }
}
