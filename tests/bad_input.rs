//! Every kind of bad input gets the right status and a JSON error body, and leaves the
//! stored state exactly as it was.

mod common;

use serde_json::Value;
use vigil_core::auth::Role;

const GOOD: &str = r#"{"type":"task-received","uuid":"t1","name":"add"}"#;

/// Everything an admin can read, to compare before and after.
async fn snapshot(host: &common::TestHost) -> Value {
    host.get("/api/v1/tasks?limit=1000").await.1
}

fn assert_error(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "body: {body}");
    assert_eq!(body["error"]["status"], want);
    assert_eq!(body["error"]["code"], code);
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn bad_ingest_bodies_are_refused_and_change_nothing() {
    let host = common::start().await;
    assert_eq!(host.ingest(GOOD).await.0, 202);
    let before = snapshot(&host).await;

    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        ("{not json", 400, "bad_request", None),
        ("", 400, "bad_request", None),
        ("\"a string\"", 400, "bad_request", None),
        (
            r#"{"type":"task-started","uuid":"t1","retries":"three"}"#,
            422,
            "invalid_field",
            Some("retries"),
        ),
        (
            r#"{"type":"task-started","uuid":7}"#,
            422,
            "invalid_field",
            Some("uuid"),
        ),
        (
            r#"{"type":"worker-exploded","hostname":"w1"}"#,
            422,
            "invalid_field",
            Some("type"),
        ),
        (r#"[]"#, 422, "invalid_field", Some("[]")),
        (
            r#"{"type":"task-progress","uuid":"t1","progress":250}"#,
            422,
            "invalid_field",
            Some("progress"),
        ),
        // A batch none of whose events is usable is refused whole, with the first error.
        (
            r#"[{"type":"task-started","uuid":7},{"type":"task-failed","uuid":"t1","runtime":"slow"}]"#,
            422,
            "invalid_field",
            Some("[0].uuid"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, b) = host.ingest(body).await;
        assert_error(s, &b, *status, code);
        assert_eq!(b["error"]["field"].as_str(), *field, "for {body}");
    }
    assert_eq!(snapshot(&host).await, before);
}

#[tokio::test]
async fn a_batch_keeps_its_valid_events_and_lists_the_invalid_ones() {
    let host = common::start().await;
    let body = r#"[{"type":"task-received","uuid":"ok1","name":"add","timestamp":1},
                   {"type":"task-failed","uuid":"ok1","runtime":"slow"},
                   "not an event",
                   {"type":"task-custom-note","uuid":"ok1","note":"kept","timestamp":2},
                   {"type":"task-started","uuid":"ok1","timestamp":3}]"#;
    let (s, b) = host.ingest(body).await;
    assert_eq!((s, b["accepted"].as_u64()), (202, Some(3)), "{b}");
    let refused = b["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2);
    assert_eq!(
        (
            refused[0]["index"].as_u64(),
            refused[0]["error"]["field"].as_str()
        ),
        (Some(1), Some("[1].runtime"))
    );
    assert_eq!(
        (
            refused[1]["index"].as_u64(),
            refused[1]["error"]["code"].as_str()
        ),
        (Some(2), Some("invalid_field"))
    );
    let (_, t) = host.get("/api/v1/tasks/ok1").await;
    assert_eq!(
        (t["state"].as_str(), t["runtime"].as_f64()),
        (Some("STARTED"), None)
    );
    let (_, h) = host.get("/api/v1/tasks/ok1/events").await;
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, ["task-received", "task-custom-note", "task-started"]);
    assert_eq!(h["events"][1]["fields"]["note"], "kept");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let host = common::start().await;
    let big = format!(
        r#"{{"type":"task-received","uuid":"big","pad":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let (s, b) = host.ingest(&big).await;
    assert_error(s, &b, 413, "payload_too_large");
    // Without a Content-Length (chunked) the limit holds while reading.
    let chunks =
        futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let req = reqwest::Client::new()
        .post(host.url("/api/v1/events"))
        .bearer_auth(common::producer())
        .body(reqwest::Body::wrap_stream(chunks));
    let (s, b) = common::send(req).await;
    assert_error(s, &b, 413, "payload_too_large");
    assert_eq!(host.get("/api/v1/tasks/big").await.0, 404);
}

#[tokio::test]
async fn tokens_are_checked_on_rest_and_push() {
    let host = common::start().await;
    let client = reqwest::Client::new();
    let expired = common::token_with("w", Role::Producer, -10, common::SECRET);
    let forged = common::token_with("w", Role::Producer, 3600, "another-secret");
    let viewer = common::token("v", Role::Viewer);
    let post = |t: Option<&str>| {
        let r = client.post(host.url("/api/v1/events")).body(GOOD);
        match t {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    };
    for (token, status, code) in [
        (None, 401, "unauthorized"),
        (Some("not-a-jwt"), 401, "unauthorized"),
        (Some(forged.as_str()), 401, "unauthorized"),
        (Some(expired.as_str()), 401, "unauthorized"),
        (Some(viewer.as_str()), 403, "forbidden"),
    ] {
        let (s, b) = common::send(post(token)).await;
        assert_error(s, &b, status, code);
    }
    let (s, b) = common::send(
        client
            .get(host.url("/api/v1/tasks"))
            .bearer_auth(common::producer()),
    )
    .await;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = common::send(client.get(host.url("/api/v1/tasks"))).await;
    assert_error(s, &b, 401, "unauthorized");
    assert_eq!(snapshot(&host).await["total"], 0, "nothing was ingested");

    // Push endpoints: same rules.
    for (url, status) in [
        (host.url("/events"), 401),
        (host.url(&format!("/events?access_token={expired}")), 401),
        (host.url(&format!("/events?access_token={forged}")), 401),
        (
            host.url(&format!("/events?access_token={}", common::producer())),
            403,
        ),
        (
            host.url(&format!("/ws?access_token={}", common::producer())),
            403,
        ),
    ] {
        let (s, b) = common::send(client.get(url)).await;
        assert_eq!(s, status, "{b}");
        assert_eq!(b["error"]["status"], status);
    }
}

#[tokio::test]
async fn unknown_routes_and_ids_are_404_and_bad_queries_422() {
    let host = common::start().await;
    let (s, b) = host.get("/api/v1/tasks/nope").await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = host.get("/api/v1/nothing-here").await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = host.get("/not-a-route").await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = host.get("/api/admin/celery/nothing").await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = host.get("/api/v1/queue/open-circuit-breaker").await;
    assert_error(s, &b, 405, "method_not_allowed");
    let (s, b) = common::send(
        reqwest::Client::new()
            .delete(host.url("/api/v1/tasks"))
            .bearer_auth(common::admin()),
    )
    .await;
    assert_error(s, &b, 405, "method_not_allowed");
    let (s, b) = host.get("/api/v1/tasks?state=DONE").await;
    assert_error(s, &b, 422, "invalid_field");
    let (s, b) = host.get("/api/v1/tasks?limit=0").await;
    assert_error(s, &b, 422, "invalid_field");
}

#[tokio::test]
async fn viewers_see_only_their_own_tasks() {
    let host = common::start().await;
    let batch = r#"[{"type":"task-received","uuid":"a1","owner":"alice"},{"type":"task-received","uuid":"b1","owner":"bob"}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    let alice = common::token("alice", Role::Viewer);
    let client = reqwest::Client::new();
    let (_, list) = common::send(client.get(host.url("/api/v1/tasks")).bearer_auth(&alice)).await;
    let ids: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1"]);
    let (s, _) = common::send(client.get(host.url("/api/v1/tasks/b1")).bearer_auth(&alice)).await;
    assert_eq!(s, 404, "another user's task does not exist for alice");
    assert_eq!(
        host.get("/api/v1/tasks").await.1["total"],
        2,
        "admin sees all"
    );
}

#[tokio::test]
async fn floods_get_429_with_retry_after_per_token() {
    let host = common::start_with(|c| {
        c.rest_rate_per_sec = 5;
        c.rest_burst = 5;
    })
    .await;
    let client = reqwest::Client::new();
    let admin = common::admin();
    // One token string throughout: the limit is per token.
    for _ in 0..5 {
        assert_eq!(host.get_as("/api/v1/tasks", &admin).await.0, 200);
    }
    let resp = client
        .get(host.url("/api/v1/tasks"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_error(429, &body, 429, "rate_limited");
    // Another caller is unaffected; the flooder recovers after the wait.
    let other = common::token("someone-else", Role::Viewer);
    assert_eq!(host.get_as("/api/v1/tasks", &other).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(host.get_as("/api/v1/tasks", &admin).await.0, 200);
}

/// Every endpoint refuses a missing token (401) and the wrong role (403) with the JSON
/// error shape, before touching anything.
#[tokio::test]
async fn every_endpoint_checks_token_and_role() {
    let host = common::start().await;
    let producer = common::producer();
    let viewer = common::token("v", Role::Viewer);
    let endpoints: &[(&str, &str, &str)] = &[
        // (method, path, a token whose role may not use it)
        ("POST", "/api/v1/events", viewer.as_str()),
        ("GET", "/api/v1/events?timeout=0", producer.as_str()),
        ("GET", "/api/v1/tasks", producer.as_str()),
        ("GET", "/api/v1/tasks/x", producer.as_str()),
        ("POST", "/api/v1/tasks/x/revoke", viewer.as_str()),
        ("GET", "/api/v1/jobs", producer.as_str()),
        ("GET", "/api/v1/workers", producer.as_str()),
        ("GET", "/api/v1/workers/x", producer.as_str()),
        ("POST", "/api/v1/workers/sweep", viewer.as_str()),
        ("GET", "/api/v1/queues", producer.as_str()),
        ("GET", "/api/v1/dashboard", producer.as_str()),
        // The breaker status is for every role (the bridge's publish guard reads it).
        ("GET", "/api/v1/tasks/x/events", producer.as_str()),
        ("POST", "/api/v1/workers/x/control", viewer.as_str()),
        (
            "POST",
            "/api/v1/queue/open-circuit-breaker",
            viewer.as_str(),
        ),
        (
            "POST",
            "/api/v1/queue/close-circuit-breaker",
            viewer.as_str(),
        ),
        ("GET", "/api/admin/celery/tasks", viewer.as_str()),
        ("POST", "/api/admin/celery/tasks/x/revoke", viewer.as_str()),
        ("POST", "/api/admin/celery/jobs/embed", viewer.as_str()),
        (
            "GET",
            "/api/admin/celery/jobs/x/wait?timeout=0",
            viewer.as_str(),
        ),
        ("GET", "/api/admin/celery/queues/stats", viewer.as_str()),
        ("GET", "/api/admin/celery/workers", viewer.as_str()),
    ];
    let client = reqwest::Client::new();
    for (method, path, wrong) in endpoints {
        let req = |token: Option<&str>| {
            let r = match *method {
                "GET" => client.get(host.url(path)),
                _ => client.post(host.url(path)).body("{}"),
            };
            match token {
                Some(t) => r.bearer_auth(t),
                None => r,
            }
        };
        let (s, b) = common::send(req(None)).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
        let (s, b) = common::send(req(Some(wrong))).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }
    let (s, b) = common::send(client.post(host.url("/api/auth/refresh"))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(snapshot(&host).await["total"], 0);
}
