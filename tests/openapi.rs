//! The served OpenAPI document matches what the API really answers: every documented
//! operation is exercised, and every response body validates against its schema.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use vigil_core::auth::Role;

/// A small JSON Schema checker: the subset the document uses ($ref, type incl. "null",
/// const, enum, required, properties, items, allOf, oneOf, minimum, maximum).
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Err(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            return Err(format!("{at}: {n} < {min}"));
        }
    }
    for sub in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check(doc, sub, v, at)?;
    }
    if let Some(any) = schema.get("oneOf").and_then(Value::as_array) {
        if !any.iter().any(|s| check(doc, s, v, at).is_ok()) {
            return Err(format!("{at}: {v} matches none of oneOf"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(r.as_str().unwrap_or_default()) {
                return Err(format!("{at}: missing required `{r}` in {v}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                if let Some(x) = obj.get(k) {
                    check(doc, s, x, &format!("{at}.{k}"))?;
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The documented path template `concrete` falls under.
fn template<'a>(doc: &'a Value, concrete: &str) -> &'a str {
    let segs: Vec<&str> = concrete.split('?').next().unwrap().split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segs.len()
                && ts
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        // Literal segments beat parameters (`/workers/sweep` over `/workers/{id}`).
        .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
        .unwrap_or_else(|| panic!("{concrete} is not documented"))
}

#[tokio::test]
async fn real_responses_match_the_served_document() {
    let host = common::start().await;
    let (status, doc) =
        common::send(reqwest::Client::new().get(host.url("/api/v1/openapi.json"))).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");

    let seed = r#"[{"type":"task-sent","uuid":"t1","name":"add","queue":"celery"},{"type":"task-checkpoint","uuid":"t1","n":1},{"type":"nope"},
                   {"type":"task-received","uuid":"t1","name":"add","routing_key":"celery","owner":"root","totalBatches":4,"completedBatches":1},
                   {"type":"task-succeeded","uuid":"t2","routing_key":"celery","result":"ok"},
                   {"type":"worker-heartbeat","hostname":"w1","active":1},{"type":"queue-stats","queue":"celery","messages":3},
                   {"type":"system-metrics","cpu":3}]"#;
    let (admin, producer, viewer) = (
        common::admin(),
        common::producer(),
        common::token("v", Role::Viewer),
    );
    let calls: Vec<(&str, String, &str, String)> = vec![
        ("POST", "/api/v1/events".into(), &producer, seed.into()),
        ("POST", "/api/v1/events".into(), &producer, "{oops".into()),
        ("POST", "/api/v1/events".into(), &viewer, "{}".into()),
        ("POST", "/api/v1/events".into(), "", "{}".into()),
        ("GET", "/health".into(), "", String::new()),
        (
            "GET",
            "/api/v1/events?since=0&timeout=1".into(),
            &admin,
            String::new(),
        ),
        (
            "GET",
            "/api/v1/events?since=x".into(),
            &admin,
            String::new(),
        ),
        ("GET", "/api/v1/tasks?limit=5".into(), &admin, String::new()),
        (
            "GET",
            "/api/v1/tasks?state=NOPE".into(),
            &admin,
            String::new(),
        ),
        ("GET", "/api/v1/tasks/t1".into(), &admin, String::new()),
        ("GET", "/api/v1/tasks/nope".into(), &admin, String::new()),
        (
            "GET",
            "/api/v1/tasks/t1/events".into(),
            &admin,
            String::new(),
        ),
        (
            "GET",
            "/api/v1/tasks/nope/events".into(),
            &admin,
            String::new(),
        ),
        ("GET", "/api/v1/jobs".into(), &admin, String::new()),
        ("GET", "/api/v1/workers".into(), &admin, String::new()),
        ("GET", "/api/v1/workers/w1".into(), &admin, String::new()),
        (
            "POST",
            "/api/v1/workers/w1/control".into(),
            &admin,
            r#"{"command":"pool_grow","n":2}"#.into(),
        ),
        (
            "POST",
            "/api/v1/workers/w1/control".into(),
            &admin,
            r#"{"command":"autoscale","max":1,"min":2}"#.into(),
        ),
        (
            "POST",
            "/api/v1/workers/nope/control".into(),
            &admin,
            r#"{"command":"shutdown"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/workers/sweep".into(),
            &admin,
            String::new(),
        ),
        ("POST", "/api/v1/tasks/expire".into(), &admin, String::new()),
        (
            "POST",
            "/api/v1/tasks/expire".into(),
            &viewer,
            String::new(),
        ),
        ("GET", "/api/v1/queues".into(), &viewer, String::new()),
        ("GET", "/api/v1/dashboard".into(), &admin, String::new()),
        (
            "GET",
            "/api/v1/metrics/system".into(),
            &admin,
            String::new(),
        ),
        (
            "GET",
            "/api/v1/metrics/system".into(),
            &viewer,
            String::new(),
        ),
        (
            "GET",
            "/api/v1/queue/circuit-breaker-status".into(),
            &viewer,
            String::new(),
        ),
        (
            "POST",
            "/api/v1/queue/open-circuit-breaker?queue=other".into(),
            &admin,
            r#"{"reason":"x"}"#.into(),
        ),
        (
            "POST",
            "/api/v1/queue/close-circuit-breaker?queue=other".into(),
            &admin,
            "{}".into(),
        ),
        (
            "POST",
            "/api/v1/queue/close-circuit-breaker".into(),
            &viewer,
            "{}".into(),
        ),
        (
            "GET",
            "/api/admin/celery/tasks?queue=celery".into(),
            &admin,
            String::new(),
        ),
        (
            "POST",
            "/api/admin/celery/jobs/embed".into(),
            &admin,
            r#"{"queue":"celery"}"#.into(),
        ),
        (
            "GET",
            "/api/admin/celery/jobs/t2/wait?timeout=1".into(),
            &admin,
            String::new(),
        ),
        (
            "GET",
            "/api/admin/celery/jobs/t1/wait?timeout=1".into(),
            &admin,
            String::new(),
        ),
        (
            "GET",
            "/api/admin/celery/queues/stats".into(),
            &admin,
            String::new(),
        ),
        (
            "GET",
            "/api/admin/celery/workers".into(),
            &admin,
            String::new(),
        ),
        (
            "POST",
            "/api/admin/celery/tasks/t1/revoke?terminate=true".into(),
            &admin,
            String::new(),
        ),
        (
            "POST",
            "/api/admin/celery/tasks/t1/revoke".into(),
            &admin,
            String::new(),
        ),
        (
            "POST",
            "/api/v1/tasks/t2/revoke".into(),
            &admin,
            String::new(),
        ),
        ("POST", "/api/auth/refresh".into(), &viewer, String::new()),
    ];
    let mut exercised = BTreeSet::new();
    for (method, path, token, body) in calls {
        let client = reqwest::Client::new();
        let mut req = match method {
            "GET" => client.get(host.url(&path)),
            _ => client.post(host.url(&path)).body(body),
        };
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        let (status, got) = common::send(req).await;
        let t = template(&doc, &path);
        let op = &doc["paths"][t][method.to_lowercase()];
        assert!(op.is_object(), "{method} {t} is not documented");
        let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{method} {path} answered {status}, which is not documented: {got}"
        );
        check(&doc, schema, &got, &format!("{method} {path} {status}")).unwrap();
        exercised.insert((t.to_owned(), method.to_lowercase()));
    }
    exercised.insert(("/api/v1/openapi.json".into(), "get".into()));
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            assert!(
                exercised.contains(&(path.clone(), method.clone())),
                "{method} {path} is documented but untested"
            );
        }
    }
}
