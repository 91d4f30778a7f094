//! Tokens from an identity provider. One host is pinned to RS256 with a PEM public key
//! and required `iss`/`aud` (configured as a library caller would); another to ES256
//! with a JWKS document (configured through the `vigil` binary's flags). Each accepts
//! its provider's tokens and refuses the rest, with the reason, on every transport:
//! REST, SSE, native WebSocket and Socket.IO (the official client).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use vigil_core::auth::Role;

const ISSUER: &str = "https://idp.test/realms/vigil";
const AUDIENCE: &str = "vigil";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/jwt")
        .join(name)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A stand-in identity provider: signs tokens with a private key from the fixtures.
struct Idp {
    alg: Algorithm,
    private: &'static str,
    /// A key nobody trusts, for forged tokens.
    forger: &'static str,
    kid: Option<&'static str>,
}

impl Idp {
    fn sign(&self, key_file: &str, claims: &Value) -> String {
        let pem = std::fs::read(fixture(key_file)).unwrap();
        let key = match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .unwrap();
        let mut header = Header::new(self.alg);
        header.kid = self.kid.map(String::from);
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// Claims as a provider issues them (with a mapped `role`), `changes` applied
    /// (a `null` removes the claim).
    fn claims(sub: &str, role: Role, changes: Value) -> Value {
        let now = now();
        let mut c = json!({
            "sub": sub, "role": role.as_str(), "iat": now, "nbf": now, "exp": now + 3600,
            "iss": ISSUER, "aud": ["account", AUDIENCE], "azp": "vigil-dashboard",
        });
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => c.as_object_mut().unwrap().remove(k),
                v => c.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        c
    }

    fn token(&self, sub: &str, role: Role) -> String {
        self.sign(self.private, &Self::claims(sub, role, json!({})))
    }

    fn token_with(&self, changes: Value) -> String {
        self.sign(self.private, &Self::claims("root", Role::Admin, changes))
    }

    /// Tokens the host must refuse, each with what its refusal must say.
    fn refused(&self) -> Vec<(&'static str, String, &'static str)> {
        let now = now();
        let admin = Self::claims("root", Role::Admin, json!({}));
        vec![
            (
                "HS256 (not the pinned algorithm)",
                common::admin(),
                "unsupported token algorithm",
            ),
            (
                "signed by another key",
                self.sign(self.forger, &admin),
                "invalid token signature",
            ),
            (
                "expired",
                self.token_with(json!({"exp": now - 60})),
                "token expired",
            ),
            (
                "not valid yet",
                self.token_with(json!({"nbf": now + 600})),
                "not valid yet",
            ),
            (
                "another issuer",
                self.token_with(json!({"iss": "https://evil.test"})),
                "issuer",
            ),
            ("no issuer", self.token_with(json!({"iss": null})), "issuer"),
            (
                "another audience",
                self.token_with(json!({"aud": "account"})),
                "audience",
            ),
            ("no role", self.token_with(json!({"role": null})), "role"),
        ]
    }
}

const RS256: Idp = Idp {
    alg: Algorithm::RS256,
    private: "rsa_private.pem",
    forger: "other_rsa_private.pem",
    kid: None,
};

const ES256: Idp = Idp {
    alg: Algorithm::ES256,
    private: "ec_private.pem",
    forger: "other_ec_private.pem",
    kid: Some("ec-1"),
};

#[tokio::test]
async fn rs256_with_a_pem_key_on_every_transport() {
    let host = common::start_with(|c| {
        c.jwt.algorithm = Some("RS256".into());
        c.jwt.public_key = Some(fixture("rsa_public.pem"));
        c.jwt.issuer = Some(ISSUER.into());
        c.jwt.audience = Some(AUDIENCE.into());
        c.sweep_interval = Duration::from_millis(200);
    })
    .await;
    every_transport(&host.base, &RS256).await;
    the_hosts_own_calls_still_work(&host, &RS256).await;
}

#[tokio::test]
async fn es256_with_a_jwks_document_through_the_binary() {
    let data = tempfile::tempdir().unwrap();
    let store = common::TestStore::from_env(data.path());
    let (child, base) = common::spawn_binary_with(
        data.path(),
        &store,
        &[
            "--jwt-algorithm",
            "ES256",
            "--jwt-public-key",
            fixture("jwks.json").to_str().unwrap(),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            "other-app, vigil",
        ],
    );
    let _host = common::KillOnDrop(child);
    every_transport(&base, &ES256).await;
}

async fn every_transport(base: &str, idp: &Idp) {
    let admin = idp.token("root", Role::Admin);
    let refused = idp.refused();
    rest(base, &admin, &refused).await;
    sse(base, &admin, &refused).await;
    websocket(base, &admin, &refused).await;
    socketio(base, idp, &refused).await;
    // Vigil cannot mint the provider's tokens: refresh is the provider's job.
    let (status, body) = common::send(
        reqwest::Client::new()
            .post(format!("{base}/api/auth/refresh"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("identity provider"));
}

async fn rest(base: &str, admin: &str, refused: &[(&str, String, &str)]) {
    let get = |token: &str| {
        common::send(
            reqwest::Client::new()
                .get(format!("{base}/api/v1/tasks"))
                .bearer_auth(token),
        )
    };
    assert_eq!(get(admin).await.0, 200);
    for (case, token, reason) in refused {
        let (status, body) = get(token).await;
        assert_eq!(status, 401, "REST, {case}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "REST, {case}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "REST, {case}: {message}");
    }
}

async fn sse(base: &str, admin: &str, refused: &[(&str, String, &str)]) {
    let open = |token: &str| reqwest::get(format!("{base}/events?access_token={token}"));
    let ok = open(admin).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(ok);
    for (case, token, reason) in refused {
        let resp = open(token).await.unwrap();
        assert_eq!(resp.status(), 401, "SSE, {case}");
        let body: Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "SSE, {case}: {message}");
    }
}

async fn websocket(base: &str, admin: &str, refused: &[(&str, String, &str)]) {
    use futures::StreamExt;
    let url = |token: &str| format!("{}/ws?access_token={token}", base.replace("http", "ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url(admin)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(first["type"], "connected");
    for (case, token, reason) in refused {
        match tokio_tungstenite::connect_async(url(token)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "WebSocket, {case}");
                let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains(reason), "WebSocket, {case}: {message}");
            }
            other => panic!("WebSocket, {case}: expected 401, got {other:?}"),
        }
    }
}

/// The official client, from `tests/socketio/idp/` (it uses `tests/socketio`'s modules).
async fn socketio(base: &str, idp: &Idp, refused: &[(&str, String, &str)]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/socketio");
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "run `npm ci` in tests/socketio first (scripts/test does)"
    );
    let refused: serde_json::Map<String, Value> = refused
        .iter()
        .map(|(case, token, reason)| (case.to_string(), json!([token, reason])))
        .collect();
    // Async: the in-process host serves on this test's runtime while node runs.
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .args(["--test", "--test-reporter=spec", "idp/tokens.test.js"])
        .env("VIGIL_URL", base)
        .env("VIGIL_IDP_ADMIN_TOKEN", idp.token("root", Role::Admin))
        .env(
            "VIGIL_IDP_PRODUCER_TOKEN",
            idp.token("worker-1", Role::Producer),
        )
        .env("VIGIL_IDP_REFUSED", Value::Object(refused).to_string())
        .output()
        .await
        .expect("node on PATH");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed: {}", out.status);
}

/// The host marks silent workers offline with its own credential, not a token it
/// would have to mint (it cannot sign the provider's algorithm).
async fn the_hosts_own_calls_still_work(host: &common::TestHost, idp: &Idp) {
    let admin = idp.token("root", Role::Admin);
    let mut sse = common::SseClient::connect(&host.url("/events?topics=workers"), &admin).await;
    let body = format!(
        r#"{{"type":"worker-online","hostname":"silent","timestamp":{}}}"#,
        now() - 100
    );
    let producer = idp.token("worker-1", Role::Producer);
    assert_eq!(host.post("/api/v1/events", &producer, &body).await.0, 202);
    assert_eq!(sse.next().await.event, "worker_registered");
    assert_eq!(sse.next().await.event, "worker_deregistered");
}
