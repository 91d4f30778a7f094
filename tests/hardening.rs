//! Issue 11's smaller findings: ids that need URL encoding read back by their encoded
//! form (or refused at ingest), non-finite numbers refused in query filters, and
//! tokens honoured only from their `nbf`.

mod common;

use serde_json::Value;
use vigil_core::auth::{self, Claims, Role};
use vigil_core::ids::encode_segment;

/// Ids from issue 11 and more that need encoding; each must be readable.
const AWKWARD: [&str; 12] = [
    "a/b",
    "with space",
    "what?",
    "hash#tag",
    "lit%2Fral",
    "../up",
    "ünïcødé-任务",
    "a+b",
    "%",
    "/",
    " lead and trail ",
    "emoji 🚀",
];

#[tokio::test]
async fn every_accepted_id_reads_back_by_its_encoded_form() {
    let host = common::start().await;
    let events: Vec<Value> = AWKWARD
        .iter()
        .map(|id| serde_json::json!({"type": "task-received", "uuid": id, "name": "t", "hostname": id}))
        .collect();
    let (status, body) = host.ingest(&Value::Array(events).to_string()).await;
    assert_eq!(status, 202, "{body}");
    for id in AWKWARD {
        let seg = encode_segment(id);
        let (status, task) = host.get(&format!("/api/v1/tasks/{seg}")).await;
        assert_eq!(
            (status, task["id"].as_str()),
            (200, Some(id)),
            "task {id:?} as {seg}"
        );
        let (status, _) = host
            .get(&format!("/api/admin/celery/jobs/{seg}/wait?timeout=0"))
            .await;
        assert_eq!(status, 200, "job wait for {id:?}");
        let (status, body) = host
            .post(&format!("/api/v1/tasks/{seg}/revoke"), &common::admin(), "")
            .await;
        assert!(status < 300, "revoke {id:?}: {status} {body}");
    }
    let worker = serde_json::json!({"type": "worker-online", "hostname": "host/with?odd#name"});
    assert_eq!(host.ingest(&worker.to_string()).await.0, 202);
    let (status, w) = host.get("/api/v1/workers/host%2Fwith%3Fodd%23name").await;
    assert_eq!(
        (status, w["id"].as_str()),
        (200, Some("host/with?odd#name")),
        "{w}"
    );
    // A path that is not percent-encoded UTF-8 is a clear 400, not a 404 or a crash.
    let (status, body) = host.get("/api/v1/tasks/%FF").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test]
async fn ids_no_url_can_name_are_refused_and_change_nothing() {
    let host = common::start().await;
    for bad in [".", "..", "", "tab\there", &"x".repeat(256)] {
        let event = serde_json::json!({"type": "task-received", "uuid": bad});
        let (status, body) = host.ingest(&event.to_string()).await;
        assert_eq!(status, 422, "{bad:?}: {body}");
        assert_eq!(body["error"]["field"], "uuid", "{bad:?}");
    }
    assert_eq!(host.get("/api/v1/tasks").await.1["total"], 0);
}

#[tokio::test]
async fn non_finite_numbers_are_refused_in_query_filters() {
    let host = common::start().await;
    for (name, value) in [
        ("received_after", "NaN"),
        ("received_before", "inf"),
        ("received_after", "-infinity"),
        ("received_before", "nan"),
        ("received_after", "1e400"),
    ] {
        let (status, body) = host.get(&format!("/api/v1/tasks?{name}={value}")).await;
        assert_eq!(status, 422, "{name}={value}: {body}");
        assert_eq!(body["error"]["field"], name);
    }
    assert_eq!(host.get("/api/v1/tasks?received_after=1.5").await.0, 200);
}

#[tokio::test]
async fn a_token_is_honoured_only_from_its_nbf() {
    let host = common::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token_from = |nbf: u64| {
        let claims = Claims {
            nbf: Some(nbf),
            ..Claims::new("root", Role::Admin, now, 3600)
        };
        auth::sign(&claims, common::SECRET.as_bytes())
    };
    let later = token_from(now + 600);
    let (status, body) = host.get_as("/api/v1/tasks", &later).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not valid yet"));
    let sse = reqwest::get(host.url(&format!("/events?access_token={later}")))
        .await
        .unwrap();
    assert_eq!(sse.status(), 401);
    assert_eq!(host.get_as("/api/v1/tasks", &token_from(now)).await.0, 200);
}

/// Status and the JSON error body of a raw request.
async fn refusal(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").cloned();
    let body = resp.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{status} {kind:?} is not JSON: {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(v["error"]["status"], status, "{v}");
    (status, v)
}

#[tokio::test]
async fn every_refusal_the_host_makes_is_the_json_shape() {
    let host = common::start().await;
    let c = reqwest::Client::new();
    let admin = common::admin();
    for (method, path) in [
        (reqwest::Method::POST, "/ws"),
        (reqwest::Method::POST, "/events"),
        (reqwest::Method::DELETE, "/metrics"),
        (reqwest::Method::POST, "/ready"),
    ] {
        let (status, v) = refusal(c.request(method.clone(), host.url(path))).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{method} {path}"
        );
    }
    for query in [
        "/events?since=abc",
        "/events?since=-1",
        "/events?since=18446744073709551616",
        "/events?since=1&since=2",
        "/ws?since=abc",
    ] {
        let (status, v) = refusal(c.get(host.url(query)).bearer_auth(&admin)).await;
        assert_eq!(status, 400, "{query}: {v}");
    }
    let long = format!("/api/v1/tasks?search={}", "x".repeat(20 * 1024));
    assert_eq!(
        refusal(c.get(host.url(&long)).bearer_auth(&admin)).await.0,
        414
    );
    let big = "y".repeat(70 * 1024);
    let req = c.get(host.url("/health")).header("x-big", big);
    assert_eq!(refusal(req).await.0, 431);
    let body = vec![b' '; 2 * 1024 * 1024];
    let req = c
        .post(host.url("/api/v1/events"))
        .bearer_auth(common::producer())
        .body(body);
    assert_eq!(refusal(req).await.0, 413);
}
