//! HS256 JWT check, the same one the Node and Python references do: a valid
//! signature, and `exp` (when it is a number) not in the past.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether `token` is signed with `secret` and unexpired.
pub fn verify(secret: &[u8], token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(sig) = B64.decode(sig.trim_end_matches('=')) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(claims.as_bytes());
    if mac.verify_slice(&sig).is_err() {
        return false;
    }
    let claims: Option<serde_json::Value> = B64
        .decode(claims.trim_end_matches('='))
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok());
    let Some(claims) = claims else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match claims.get("exp").and_then(serde_json::Value::as_f64) {
        Some(exp) => exp >= now,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], claims: &str) -> String {
        let head = format!(
            "{}.{}",
            B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            B64.encode(claims)
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(head.as_bytes());
        format!("{head}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signature_and_expiry() {
        let good = sign(b"s", r#"{"sub":"bench","exp":99999999999}"#);
        assert!(verify(b"s", &good));
        assert!(!verify(b"other", &good));
        assert!(verify(b"s", &sign(b"s", r#"{"sub":"bench"}"#)));
        assert!(!verify(b"s", &sign(b"s", r#"{"sub":"bench","exp":1}"#)));
        assert!(!verify(b"s", &sign(b"s", "not json")));
        assert!(!verify(b"s", "a.b"));
        assert!(!verify(b"s", &format!("{good}.x")));
    }
}
