//! [`Verifier`]: a token checked against the configured algorithm and key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;

use super::config::{public_keys, KeyConfig, KeyError, ALGORITHMS};
use super::{check_times, Claims, TokenError};

/// Verifies tokens with the configured algorithm and key.
pub struct Verifier {
    name: &'static str,
    algorithm: Algorithm,
    /// Keys by `kid`; one key without a `kid` for a secret or a PEM.
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
    /// The HS* secret, so the server can mint refreshed tokens; `None` otherwise.
    secret: Option<Vec<u8>>,
}

impl Verifier {
    /// A verifier for `config`, or why the configuration is unusable.
    pub fn new(config: &KeyConfig) -> Result<Self, KeyError> {
        let wanted = match config.algorithm.as_str() {
            "" => "HS256",
            other => other,
        };
        let (name, algorithm, family) = ALGORITHMS
            .into_iter()
            .find(|(n, ..)| *n == wanted)
            .ok_or_else(|| KeyError::UnknownAlgorithm(wanted.to_owned()))?;
        let (keys, secret) = match family {
            AlgorithmFamily::Hmac if config.secret.is_empty() => {
                return Err(KeyError::MissingSecret)
            }
            AlgorithmFamily::Hmac => {
                let secret = config.secret.as_bytes();
                let key = DecodingKey::from_secret(secret);
                (vec![(None, key)], Some(secret.to_vec()))
            }
            _ => (public_keys(&config.public_key, name, family)?, None),
        };
        Ok(Self {
            name,
            algorithm,
            keys,
            validation: validation(algorithm, config),
            secret,
        })
    }

    /// An HS256 verifier for `secret`.
    pub fn hs256(secret: &str) -> Result<Self, KeyError> {
        Self::new(&KeyConfig {
            secret: secret.to_owned(),
            ..KeyConfig::default()
        })
    }

    /// The pinned algorithm's name.
    pub fn algorithm(&self) -> &'static str {
        self.name
    }

    /// The claims of `token` if it verifies at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let header = TokenHeader::read(token)?;
        if header.alg != self.name {
            return Err(TokenError::UnsupportedAlgorithm {
                got: header.alg,
                want: self.name,
            });
        }
        let key = self.key(header.kid.as_deref())?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(refusal)?
            .claims;
        check_times(&claims, now)?;
        Ok(claims)
    }

    /// A token for `claims` signed like the ones this server accepts, when it holds the
    /// signing key (HS*); `None` when tokens come from an identity provider.
    pub fn mint(&self, claims: &Claims) -> Option<String> {
        let secret = self.secret.as_deref()?;
        Some(sign_hmac(claims, self.algorithm, secret))
    }

    fn key(&self, kid: Option<&str>) -> Result<&DecodingKey, TokenError> {
        let found = match (self.keys.as_slice(), kid) {
            // A secret or a PEM: the one key, whatever `kid` the token names.
            ([(None, key)], _) => Some(key),
            (keys, Some(kid)) => keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key),
            ([(_, key)], None) => Some(key),
            (_, None) => None,
        };
        found.ok_or(TokenError::UnknownKey)
    }
}

/// What Vigil reads of a token's header before choosing a key.
#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl TokenHeader {
    fn read(token: &str) -> Result<Self, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let bytes = B64.decode(header).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
    }
}

/// `exp` is required and checked by [`check_times`] against the caller's clock; `iss`
/// and `aud` are required and checked when configured.
fn validation(algorithm: Algorithm, config: &KeyConfig) -> Validation {
    let mut v = Validation::new(algorithm);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = 0;
    if !config.issuer.is_empty() {
        v.set_issuer(&[config.issuer.as_str()]);
        v.required_spec_claims.insert("iss".to_owned());
    }
    let audiences: Vec<&str> = config
        .audience
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&audiences);
        v.required_spec_claims.insert("aud".to_owned());
    }
    v
}

fn refusal(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => TokenError::Claims(format!("missing field `{c}`")),
        ErrorKind::Json(e) => TokenError::Claims(e.to_string()),
        _ => TokenError::Malformed,
    }
}

/// Signs `claims` with an HS* `algorithm`.
pub(super) fn sign_hmac(claims: &Claims, algorithm: Algorithm, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key).unwrap_or_default()
}
