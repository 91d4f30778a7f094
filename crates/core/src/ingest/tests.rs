use super::*;
use crate::task::TaskState;

fn tasks(body: &[u8]) -> Vec<TaskEvent> {
    let parsed = parse_body(body).unwrap();
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    parsed
        .events
        .into_iter()
        .map(|e| match e {
            IngestEvent::Task(t) => t,
            other => panic!("not a task event: {other:?}"),
        })
        .collect()
}

fn refusal(body: &str) -> ApiError {
    parse_body(body.as_bytes()).unwrap_err()
}

#[test]
fn parses_one_celery_event_and_keeps_unknown_fields() {
    let evs = tasks(
        br#"{"type":"task-received","uuid":"u1","name":"app.add","args":"(1, 2)",
             "routing_key":"celery","timestamp":1700000000.5,"hostname":"w1","clock":12}"#,
    );
    let e = &evs[0];
    assert_eq!(
        (e.kind.as_str(), e.state),
        ("task-received", Some(TaskState::Received))
    );
    assert_eq!(e.fields.queue.as_deref(), Some("celery"));
    assert_eq!(e.fields.args, Some(Value::from("(1, 2)")));
    assert_eq!(e.timestamp, Some(1700000000.5));
    assert_eq!(e.extra.get("clock"), Some(&Value::from(12)));
    assert!(!e.extra.contains_key("type"));
    assert_eq!(e.raw.get("type"), Some(&Value::from("task-received")));
}

#[test]
fn task_sent_carries_queue_eta_expires_and_lineage() {
    let e = &tasks(
        br#"{"type":"task-sent","uuid":"c1","name":"app.mul","args":"(2,)","kwargs":"{}",
             "retries":0,"eta":"2026-01-01T00:00:00+00:00","expires":null,"queue":"math",
             "exchange":"","routing_key":"math","root_id":"r1","parent_id":"p1",
             "hostname":"gen@client","timestamp":5.0}"#,
    )[0];
    assert_eq!(e.state, Some(TaskState::Pending));
    let f = &e.fields;
    assert_eq!(f.queue.as_deref(), Some("math"));
    assert_eq!(f.eta, Some(Value::from("2026-01-01T00:00:00+00:00")));
    assert_eq!(f.expires, None);
    assert_eq!(
        (f.parent_id.as_deref(), f.root_id.as_deref()),
        (Some("p1"), Some("r1"))
    );
    assert_eq!(f.hostname.as_deref(), Some("gen@client"));
}

#[test]
fn unknown_task_types_are_custom_events() {
    let e = &tasks(br#"{"type":"task-checkpoint","uuid":"a","stage":3}"#)[0];
    assert_eq!((e.kind.as_str(), e.state), ("task-checkpoint", None));
    assert_eq!(e.extra.get("stage"), Some(&Value::from(3)));
    let long = format!(r#"{{"type":"task-{}","uuid":"a"}}"#, "x".repeat(100));
    assert_eq!(refusal(&long).field.as_deref(), Some("type"));
}

#[test]
fn a_batch_keeps_its_good_events_and_lists_the_bad_ones() {
    let parsed = parse_body(
        br#"[{"type":"task-started","uuid":"a"},
             {"type":"nope","uuid":"b"},
             7,
             {"type":"task-succeeded","uuid":"a","retries":"two"},
             {"type":"task-succeeded","uuid":"a","result":"3"}]"#,
    )
    .unwrap();
    assert_eq!(parsed.events.len(), 2);
    let blamed: Vec<(usize, Option<&str>)> = parsed
        .refused
        .iter()
        .map(|r| (r.index, r.error.field.as_deref()))
        .collect();
    assert_eq!(
        blamed,
        [
            (1, Some("[1].type")),
            (2, Some("[2]")),
            (3, Some("[3].retries"))
        ]
    );
    let answer = parsed.answer();
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["refused"][0]["index"], 1);
    assert_eq!(answer["refused"][0]["error"]["status"], 422);
    assert_eq!(answer["refused"][2]["error"]["field"], "[3].retries");
}

#[test]
fn refuses_whole_requests_that_are_not_events() {
    assert_eq!(refusal("{not json").status, 400);
    assert_eq!(refusal("42").status, 400);
    assert_eq!(refusal("[]").status, 422);
    let one = r#"{"type":"task-started","uuid":"a"}"#;
    let body = format!("[{}]", vec![one; MAX_BATCH + 1].join(","));
    assert_eq!(refusal(&body).status, 422);
    let e = refusal(r#"[{"type":"x"},{"type":"task-started"}]"#);
    assert_eq!(
        (e.status, e.field.as_deref()),
        (422, Some("[0].type")),
        "none usable: the first error"
    );
}

#[test]
fn a_lone_event_is_refused_with_the_field_to_blame() {
    let e = refusal(r#"{"type":"task-started","uuid":"a","retries":"two"}"#);
    assert_eq!((e.status, e.field.as_deref()), (422, Some("retries")));
    for (body, field) in [
        (r#"{"type":"task-started"}"#, "uuid"),
        (
            r#"{"type":"task-progress","uuid":"a","progress":101}"#,
            "progress",
        ),
        (r#"{"type":"task-started","uuid":""}"#, "uuid"),
        (r#"{"type":"task-started","uuid":5}"#, "uuid"),
        (r#"{"type":"task-sent","uuid":"a","eta":[1]}"#, "eta"),
        (
            r#"{"type":"task-sent","uuid":"a","parent_id":""}"#,
            "parent_id",
        ),
        (r#"{"type":"bogus"}"#, "type"),
    ] {
        assert_eq!(refusal(body).field.as_deref(), Some(field), "{body}");
    }
}

#[test]
fn parses_worker_queue_and_metrics_events() {
    let evs = parse_body(
        br#"[{"type":"worker-heartbeat","hostname":"celery@w1","active":2,"processed":10,
              "loadavg":[0.1,0.2,0.3],"sw_ver":"5.4","pid":42,"clock":3},
             {"type":"queue-stats","queue":"embedding","messages":12,"consumers":3},
             {"type":"system-metrics","cpu":40.5,"timestamp":5},
             {"type":"worker-stats","hostname":"celery@w1","stats":{"pool":{"max-concurrency":4}}}]"#,
    )
    .unwrap()
    .events;
    let IngestEvent::Worker(w) = &evs[0] else {
        panic!()
    };
    assert_eq!(
        (w.hostname.as_str(), w.active, w.processed, w.pid),
        ("celery@w1", Some(2), Some(10), Some(42))
    );
    assert_eq!(w.sw_ver.as_deref(), Some("5.4"));
    assert_eq!(w.extra.get("clock"), Some(&Value::from(3)));
    let IngestEvent::QueueStats(q) = &evs[1] else {
        panic!()
    };
    assert_eq!(
        (q.name.as_str(), q.depth, q.consumers),
        ("embedding", Some(12), Some(3))
    );
    let IngestEvent::SystemMetrics(m) = &evs[2] else {
        panic!()
    };
    assert_eq!(m.get("cpu"), Some(&Value::from(40.5)));
    let IngestEvent::WorkerStats(s) = &evs[3] else {
        panic!()
    };
    assert_eq!(s.stats["pool"]["max-concurrency"], 4);
    assert_eq!(
        refusal(r#"{"type":"worker-online"}"#).field.as_deref(),
        Some("hostname")
    );
    assert_eq!(
        refusal(r#"{"type":"queue-stats","queue":"q","depth":-1}"#)
            .field
            .as_deref(),
        Some("depth")
    );
    assert_eq!(
        refusal(r#"{"type":"worker-stats","hostname":"w","stats":3}"#)
            .field
            .as_deref(),
        Some("stats")
    );
}

#[test]
fn batch_job_fields_are_typed() {
    let t = &tasks(br#"{"type":"task-progress","uuid":"j","totalBatches":10,"completedBatches":4,"estimatedTimeRemaining":12.5}"#)[0];
    assert_eq!(
        (
            t.fields.total_batches,
            t.fields.completed_batches,
            t.fields.eta_secs
        ),
        (Some(10), Some(4), Some(12.5))
    );
    assert_eq!(
        refusal(r#"{"type":"task-progress","uuid":"j","totalBatches":"ten"}"#)
            .field
            .as_deref(),
        Some("totalBatches")
    );
}
