//! Verifying HS256, RS256 and ES256 tokens with the keys in `tests/fixtures/jwt/`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/jwt/");
const NOW: u64 = 1_000_000;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{name}")).unwrap()
}

fn claims() -> Claims {
    Claims::new("alice", Role::Viewer, NOW, 600)
}

/// `claims` as JSON plus `extra` fields, signed with a private key fixture.
fn signed(alg: Algorithm, private: &str, kid: Option<&str>, extra: serde_json::Value) -> String {
    let mut body = serde_json::to_value(claims()).unwrap();
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let pem = fixture(private);
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, &body, &key).unwrap()
}

fn verifier(algorithm: &str, public_key: &str) -> Verifier {
    Verifier::new(&KeyConfig {
        algorithm: algorithm.into(),
        secret: "s3cret".into(),
        public_key: fixture(public_key),
        ..KeyConfig::default()
    })
    .unwrap()
}

#[test]
fn hs256_round_trip_and_refusals() {
    let v = Verifier::hs256("s3cret").unwrap();
    let t = sign(&claims(), b"s3cret");
    assert_eq!(v.verify(&t, NOW), Ok(claims()));
    let other = Verifier::hs256("other").unwrap();
    assert_eq!(other.verify(&t, NOW), Err(TokenError::BadSignature));
    assert_eq!(v.verify("a.b", NOW), Err(TokenError::Malformed));
    assert_eq!(v.verify("a.b.c", NOW), Err(TokenError::Malformed));
    assert!(v.verify(&t.replacen('.', ".x", 1), NOW).is_err());
    assert_eq!(
        v.mint(&claims()).map(|t| v.verify(&t, NOW)),
        Some(Ok(claims()))
    );
}

#[test]
fn rs256_and_es256_public_keys_verify_their_tokens() {
    let rs = verifier("RS256", "rsa_public.pem");
    let t = signed(
        Algorithm::RS256,
        "rsa_private.pem",
        None,
        serde_json::json!({}),
    );
    assert_eq!(rs.verify(&t, NOW), Ok(claims()));
    assert!(
        rs.mint(&claims()).is_none(),
        "no signing key for an identity provider"
    );
    let forged = signed(
        Algorithm::RS256,
        "other_rsa_private.pem",
        None,
        serde_json::json!({}),
    );
    assert_eq!(rs.verify(&forged, NOW), Err(TokenError::BadSignature));

    let es = verifier("ES256", "ec_public.pem");
    let t = signed(
        Algorithm::ES256,
        "ec_private.pem",
        None,
        serde_json::json!({}),
    );
    assert_eq!(es.verify(&t, NOW), Ok(claims()));
}

#[test]
fn the_algorithm_is_pinned_by_configuration() {
    let rs = verifier("RS256", "rsa_public.pem");
    // The classic confusion: HS256 signed with the public key as the secret.
    let confused = sign(&claims(), fixture("rsa_public.pem").as_bytes());
    assert!(matches!(
        rs.verify(&confused, NOW),
        Err(TokenError::UnsupportedAlgorithm { want: "RS256", .. })
    ));
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none"}"#),
        B64.encode(serde_json::to_vec(&claims()).unwrap())
    );
    assert!(matches!(
        rs.verify(&none, NOW),
        Err(TokenError::UnsupportedAlgorithm { .. })
    ));
    let hs = Verifier::hs256("s3cret").unwrap();
    let es = signed(
        Algorithm::ES256,
        "ec_private.pem",
        None,
        serde_json::json!({}),
    );
    assert!(matches!(
        hs.verify(&es, NOW),
        Err(TokenError::UnsupportedAlgorithm { .. })
    ));
}

#[test]
fn jwks_keys_are_chosen_by_kid() {
    let rs = verifier("RS256", "jwks.json");
    let t = signed(
        Algorithm::RS256,
        "rsa_private.pem",
        Some("rsa-1"),
        serde_json::json!({}),
    );
    assert_eq!(rs.verify(&t, NOW), Ok(claims()));
    // Only one RS256 signing key in the set (the encryption key is skipped): no kid is fine.
    let t = signed(
        Algorithm::RS256,
        "rsa_private.pem",
        None,
        serde_json::json!({}),
    );
    assert_eq!(rs.verify(&t, NOW), Ok(claims()));
    let t = signed(
        Algorithm::RS256,
        "rsa_private.pem",
        Some("nope"),
        serde_json::json!({}),
    );
    assert_eq!(rs.verify(&t, NOW), Err(TokenError::UnknownKey));
    let t = signed(
        Algorithm::RS256,
        "other_rsa_private.pem",
        Some("enc-1"),
        serde_json::json!({}),
    );
    assert_eq!(rs.verify(&t, NOW), Err(TokenError::UnknownKey));

    let es = verifier("ES256", "jwks.json");
    let t = signed(
        Algorithm::ES256,
        "ec_private.pem",
        Some("ec-1"),
        serde_json::json!({}),
    );
    assert_eq!(es.verify(&t, NOW), Ok(claims()));
}

#[test]
fn issuer_audience_and_times_are_checked() {
    let v = Verifier::new(&KeyConfig {
        algorithm: "RS256".into(),
        public_key: fixture("rsa_public.pem"),
        issuer: "https://idp.example/realms/vigil".into(),
        audience: "vigil, vigil-api".into(),
        ..KeyConfig::default()
    })
    .unwrap();
    let with = |extra| signed(Algorithm::RS256, "rsa_private.pem", None, extra);
    let good = with(
        serde_json::json!({"iss": "https://idp.example/realms/vigil", "aud": ["account", "vigil-api"]}),
    );
    assert_eq!(v.verify(&good, NOW), Ok(claims()));
    let bad_iss = with(serde_json::json!({"iss": "https://evil.example", "aud": "vigil"}));
    assert_eq!(v.verify(&bad_iss, NOW), Err(TokenError::WrongIssuer));
    let no_iss = with(serde_json::json!({"aud": "vigil"}));
    assert_eq!(v.verify(&no_iss, NOW), Err(TokenError::WrongIssuer));
    let bad_aud =
        with(serde_json::json!({"iss": "https://idp.example/realms/vigil", "aud": "account"}));
    assert_eq!(v.verify(&bad_aud, NOW), Err(TokenError::WrongAudience));
    let later = with(
        serde_json::json!({"iss": "https://idp.example/realms/vigil", "aud": "vigil", "nbf": NOW + 60}),
    );
    assert_eq!(v.verify(&later, NOW), Err(TokenError::NotYetValid));
    assert!(v.verify(&later, NOW + 60).is_ok());
    let after = NOW + 600 + CLOCK_LEEWAY_SECS;
    assert_eq!(v.verify(&good, after), Err(TokenError::Expired));
}

#[test]
fn claims_vigil_cannot_use_are_refused_with_the_reason() {
    let v = verifier("RS256", "rsa_public.pem");
    let key = EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap();
    let body = serde_json::json!({"sub": "a", "exp": NOW + 60});
    let t = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &body, &key).unwrap();
    match v.verify(&t, NOW) {
        Err(TokenError::Claims(why)) => assert!(why.contains("role"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unusable_configurations_say_why() {
    let config = |algorithm: &str, public_key: &str| KeyConfig {
        algorithm: algorithm.into(),
        public_key: public_key.into(),
        ..KeyConfig::default()
    };
    let err = |c| Verifier::new(&c).err().unwrap();
    assert_eq!(err(config("HS256", "")), KeyError::MissingSecret);
    assert_eq!(
        err(config("none", "")),
        KeyError::UnknownAlgorithm("none".into())
    );
    assert_eq!(
        err(config("RS256", "")),
        KeyError::MissingPublicKey("RS256")
    );
    assert!(matches!(
        err(config("RS256", "garbage")),
        KeyError::Pem("RS256", _)
    ));
    let ec = fixture("ec_public.pem");
    assert!(matches!(err(config("RS256", &ec)), KeyError::Pem(..)));
    assert!(matches!(
        err(config("ES256", "{\"keys\": 5}")),
        KeyError::Jwks(_)
    ));
    assert_eq!(
        err(config("ES384", &fixture("jwks.json"))),
        KeyError::NoUsableJwk("ES384")
    );
}
