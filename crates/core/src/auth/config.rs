//! How tokens are to be verified: the `jwt_*` configuration and the keys it names, an
//! HS* secret or an identity provider's public key as PEM or as a JWKS document.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

/// The algorithms a deployment may pin, with the key family each verifies with.
pub(super) const ALGORITHMS: [(&str, Algorithm, AlgorithmFamily); 12] = [
    ("HS256", Algorithm::HS256, AlgorithmFamily::Hmac),
    ("HS384", Algorithm::HS384, AlgorithmFamily::Hmac),
    ("HS512", Algorithm::HS512, AlgorithmFamily::Hmac),
    ("RS256", Algorithm::RS256, AlgorithmFamily::Rsa),
    ("RS384", Algorithm::RS384, AlgorithmFamily::Rsa),
    ("RS512", Algorithm::RS512, AlgorithmFamily::Rsa),
    ("PS256", Algorithm::PS256, AlgorithmFamily::Rsa),
    ("PS384", Algorithm::PS384, AlgorithmFamily::Rsa),
    ("PS512", Algorithm::PS512, AlgorithmFamily::Rsa),
    ("ES256", Algorithm::ES256, AlgorithmFamily::Ec),
    ("ES384", Algorithm::ES384, AlgorithmFamily::Ec),
    ("EdDSA", Algorithm::EdDSA, AlgorithmFamily::Ed),
];
/// How tokens are verified, as the `jwt_*` Spin variables (and `vigil serve`) say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyConfig {
    /// The one algorithm accepted (`HS256` when empty).
    pub algorithm: String,
    /// The HS* secret.
    pub secret: String,
    /// For RS*/PS*/ES*/EdDSA: a PEM public key (or certificate) or a JWKS document.
    pub public_key: String,
    /// The required `iss`; empty: not checked.
    pub issuer: String,
    /// Comma-separated accepted `aud` values; empty: not checked.
    pub audience: String,
}

impl KeyConfig {
    /// Variable holding [`KeyConfig::algorithm`].
    pub const ALGORITHM: &'static str = "jwt_algorithm";
    /// Variable holding [`KeyConfig::secret`].
    pub const SECRET: &'static str = "jwt_secret";
    /// Variable holding [`KeyConfig::public_key`].
    pub const PUBLIC_KEY: &'static str = "jwt_public_key";
    /// Variable holding [`KeyConfig::issuer`].
    pub const ISSUER: &'static str = "jwt_issuer";
    /// Variable holding [`KeyConfig::audience`].
    pub const AUDIENCE: &'static str = "jwt_audience";

    /// Reads the configuration from variables; absent ones are empty.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name| get(name).unwrap_or_default().trim().to_owned();
        Self {
            algorithm: var(Self::ALGORITHM),
            secret: get(Self::SECRET).unwrap_or_default(),
            public_key: var(Self::PUBLIC_KEY),
            issuer: var(Self::ISSUER),
            audience: var(Self::AUDIENCE),
        }
    }
}

/// Why a key configuration cannot be used (a server misconfiguration, not a bad token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not one of the supported algorithm names.
    #[error("jwt_algorithm `{0}` is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA")]
    UnknownAlgorithm(String),
    /// An HS* algorithm without a secret.
    #[error("jwt_secret is not set")]
    MissingSecret,
    /// A public-key algorithm without a key.
    #[error("jwt_algorithm {0} needs jwt_public_key (a PEM public key or a JWKS document)")]
    MissingPublicKey(&'static str),
    /// The PEM does not hold a key of the algorithm's family.
    #[error("jwt_public_key is not a {0} public key in PEM: {1}")]
    Pem(&'static str, String),
    /// The JWKS document is not JSON with a `keys` array.
    #[error("jwt_public_key is not a JWKS document: {0}")]
    Jwks(String),
    /// The JWKS document holds no signing key for the algorithm.
    #[error("jwt_public_key holds no {0} signing key")]
    NoUsableJwk(&'static str),
}

/// The keys in `text`: a JWKS document (JSON) or one PEM key of `family`.
pub(super) fn public_keys(
    text: &str,
    name: &'static str,
    family: AlgorithmFamily,
) -> Result<Vec<(Option<String>, DecodingKey)>, KeyError> {
    if text.is_empty() {
        return Err(KeyError::MissingPublicKey(name));
    }
    if text.starts_with('{') {
        return jwks(text, name, family);
    }
    let pem = text.as_bytes();
    let key = match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        _ => DecodingKey::from_ed_pem(pem),
    };
    let key = key.map_err(|e| KeyError::Pem(name, e.to_string()))?;
    Ok(vec![(None, key)])
}

/// The signing keys of a JWKS document usable with `algorithm`. Others (encryption
/// keys, keys for other algorithms, kinds the library does not know) are skipped, as
/// identity providers publish them side by side.
fn jwks(
    text: &str,
    name: &'static str,
    family: AlgorithmFamily,
) -> Result<Vec<(Option<String>, DecodingKey)>, KeyError> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_str(text).map_err(|e| KeyError::Jwks(e.to_string()))?;
    let usable = |value: serde_json::Value| {
        let jwk: Jwk = serde_json::from_value(value).ok()?;
        let for_signing = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
        let right_alg = jwk
            .common
            .key_algorithm
            .is_none_or(|a| a.to_string() == name);
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        (for_signing && right_alg && key.family() == family).then_some((jwk.common.key_id, key))
    };
    let keys: Vec<_> = set.keys.into_iter().filter_map(usable).collect();
    if keys.is_empty() {
        return Err(KeyError::NoUsableJwk(name));
    }
    Ok(keys)
}
