//! Who is calling: the bearer token checked against the `jwt_secret` Spin variable.

use vigil_core::auth::{self, Claims};
use vigil_core::error::ApiError;

use crate::request::Req;

/// Spin variable holding the HS256 secret shared with the host.
const SECRET_VARIABLE: &str = "jwt_secret";

/// The caller's claims, or 401.
pub fn claims(req: &Req) -> Result<Claims, ApiError> {
    let token = auth::bearer(req.authorization.as_deref())?;
    let secret = spin_sdk::variables::get(SECRET_VARIABLE)
        .map_err(|_| ApiError::internal("server misconfigured: jwt_secret is not set"))?;
    Ok(auth::verify(token, secret.as_bytes(), now_secs())?)
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
    if c.role != vigil_core::auth::Role::Admin {
        return Err(ApiError::forbidden("this endpoint needs role admin"));
    }
    Ok(c)
}

/// `POST /api/auth/refresh`: a fresh token for the caller, with the same lifetime.
pub fn refresh(req: &Req) -> Result<spin_sdk::http::Response, ApiError> {
    /// Lifetime of a refreshed token whose original had no `iat`.
    const DEFAULT_TTL: u64 = 3600;
    let c = claims(req)?;
    let now = now_secs();
    let ttl = if c.iat > 0 && c.exp > c.iat {
        c.exp - c.iat
    } else {
        DEFAULT_TTL
    };
    let fresh = Claims {
        exp: now + ttl,
        iat: now,
        ..c
    };
    let secret = spin_sdk::variables::get(SECRET_VARIABLE)
        .map_err(|_| ApiError::internal("server misconfigured: jwt_secret is not set"))?;
    let token = vigil_core::auth::sign(&fresh, secret.as_bytes());
    Ok(crate::json_response(
        200,
        &serde_json::json!({ "access_token": token, "token_type": "bearer", "expires_in": ttl }),
    ))
}
