//! Who is calling: the bearer token checked with the key the `jwt_*` Spin variables
//! configure (`jwt_algorithm`, `jwt_secret`, `jwt_public_key`, `jwt_issuer`,
//! `jwt_audience`), the same configuration the host verifies push connections with.

use vigil_core::auth::{self, Claims, KeyConfig, Role, Verifier};
use vigil_core::error::ApiError;

use crate::request::Req;

/// The verifier the Spin variables configure, or 500 saying what is misconfigured.
fn verifier() -> Result<Verifier, ApiError> {
    let config = KeyConfig::from_variables(|name| spin_sdk::variables::get(name).ok());
    Verifier::new(&config).map_err(|e| ApiError::internal(format!("server misconfigured: {e}")))
}

/// The caller's claims, or 401. The host's own credential stands for an admin.
pub fn claims(req: &Req) -> Result<Claims, ApiError> {
    /// Lifetime given to the host's claims (they are never turned into a token).
    const HOST_CLAIMS_TTL: u64 = 60;
    let token = auth::bearer(req.authorization.as_deref())?;
    let host = spin_sdk::variables::get(auth::HOST_TOKEN_VARIABLE).unwrap_or_default();
    if auth::is_host_token(token, &host) {
        return Ok(Claims::new(
            auth::HOST_SUBJECT,
            Role::Admin,
            now_secs(),
            HOST_CLAIMS_TTL,
        ));
    }
    Ok(verifier()?.verify(token, now_secs())?)
}

/// A caller allowed to read, or 401/403.
pub fn reader(req: &Req) -> Result<Claims, ApiError> {
    let c = claims(req)?;
    if !c.role.can_read() {
        return Err(ApiError::forbidden(
            "this endpoint needs role viewer or admin",
        ));
    }
    Ok(c)
}

/// A caller allowed to report events, or 401/403.
pub fn producer(req: &Req) -> Result<Claims, ApiError> {
    let c = claims(req)?;
    if !c.role.can_ingest() {
        return Err(ApiError::forbidden("this endpoint needs role producer"));
    }
    Ok(c)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An admin, or 401/403.
pub fn admin(req: &Req) -> Result<Claims, ApiError> {
    let c = claims(req)?;
    if c.role != Role::Admin {
        return Err(ApiError::forbidden("this endpoint needs role admin"));
    }
    Ok(c)
}

/// `POST /api/auth/refresh`: a fresh token for the caller, with the same lifetime.
/// Only where Vigil holds the signing key (HS*): an identity provider's tokens are
/// refreshed at the identity provider.
pub fn refresh(req: &Req) -> Result<spin_sdk::http::Response, ApiError> {
    /// Lifetime of a refreshed token whose original had no `iat`.
    const DEFAULT_TTL: u64 = 3600;
    let verifier = verifier()?;
    let token = auth::bearer(req.authorization.as_deref())?;
    let c = verifier.verify(token, now_secs())?;
    let now = now_secs();
    let ttl = if c.iat > 0 && c.exp > c.iat {
        c.exp - c.iat
    } else {
        DEFAULT_TTL
    };
    let fresh = Claims::new(c.sub, c.role, now, ttl);
    let token = verifier.mint(&fresh).ok_or_else(|| {
        ApiError::forbidden(format!(
            "tokens are issued by the identity provider (jwt_algorithm {}); refresh there",
            verifier.algorithm()
        ))
    })?;
    Ok(crate::json_response(
        200,
        &serde_json::json!({ "access_token": token, "token_type": "bearer", "expires_in": ttl }),
    ))
}
