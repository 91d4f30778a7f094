//! JWT (HS256) tokens: minting, verifying, and what each role may do.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

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

/// The claims Vigil reads from a token.
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
    /// Signed with another algorithm than HS256.
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    /// The signature does not match the configured secret.
    #[error("invalid token signature")]
    BadSignature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::unauthorized(e.to_string())
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Signs `claims` with HS256.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{body}");
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies an HS256 token against `secret` at time `now` (seconds since the epoch).
pub fn verify(token: &str, secret: &[u8], now: u64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(b), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = decode_json(h)?;
    if header.alg != "HS256" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(b.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = decode_json(b)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = B64.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            role,
            exp,
            iat: 0,
        }
    }

    #[test]
    fn signed_token_verifies() {
        let t = sign(&claims(Role::Viewer, 100), b"s3cret");
        assert_eq!(
            verify(&t, b"s3cret", 99).unwrap(),
            claims(Role::Viewer, 100)
        );
    }

    #[test]
    fn refuses_wrong_secret_expiry_and_garbage() {
        let t = sign(&claims(Role::Admin, 100), b"s3cret");
        assert_eq!(verify(&t, b"other", 1), Err(TokenError::BadSignature));
        assert_eq!(verify(&t, b"s3cret", 100), Err(TokenError::Expired));
        assert_eq!(verify("a.b", b"s3cret", 1), Err(TokenError::Malformed));
        assert_eq!(verify("a.b.c", b"s3cret", 1), Err(TokenError::Malformed));
        let tampered = t.replacen('.', ".x", 1);
        assert!(verify(&tampered, b"s3cret", 1).is_err());
    }

    #[test]
    fn refuses_other_algorithms() {
        let h = B64.encode(br#"{"alg":"none"}"#);
        let b = B64.encode(br#"{"sub":"x","role":"admin","exp":9999999999}"#);
        assert_eq!(
            verify(&format!("{h}.{b}."), b"s", 1),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(TokenError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(TokenError::Malformed));
    }

    #[test]
    fn roles() {
        assert!(Role::Viewer.can_read() && !Role::Viewer.can_ingest());
        assert!(Role::Producer.can_ingest() && !Role::Producer.can_read());
        assert!(Role::Admin.can_read() && Role::Admin.can_ingest());
    }
}
