//! The REST and long-poll surface, including seeds 000 and 002, against the real host.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_core::auth::Role;

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn workers_register_report_and_show_status() {
    let host = common::start().await;
    let mut sse =
        common::SseClient::connect(&host.url("/events?topics=workers"), &common::admin()).await;
    let batch = r#"[{"type":"worker-online","hostname":"celery@w1","freq":2.0},
                    {"type":"worker-heartbeat","hostname":"celery@w1","active":2,"processed":7,"cpu":35.5}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    assert_eq!(sse.next().await.event, "worker_registered");
    assert_eq!(sse.next().await.event, "worker_status_change");
    let (s, w) = host.get("/api/v1/workers/celery@w1").await;
    assert_eq!(
        (
            s,
            w["status"].as_str(),
            w["active"].as_u64(),
            w["cpu"].as_f64()
        ),
        (200, Some("busy"), Some(2), Some(35.5))
    );
    let (_, all) = host.get("/api/admin/celery/workers").await;
    assert_eq!(all[0]["id"], "celery@w1");
    assert_eq!(
        host.ingest(r#"{"type":"worker-offline","hostname":"celery@w1"}"#)
            .await
            .0,
        202
    );
    assert_eq!(sse.next().await.event, "worker_deregistered");
    assert_eq!(
        host.get("/api/v1/workers").await.1["workers"][0]["status"],
        "offline"
    );
    assert_eq!(host.get("/api/v1/workers/nobody").await.0, 404);
}

#[tokio::test]
async fn queues_combine_task_counts_and_reports() {
    let host = common::start().await;
    let batch = r#"[{"type":"task-received","uuid":"a","routing_key":"embedding","timestamp":100},
                    {"type":"task-received","uuid":"b","routing_key":"embedding","timestamp":100},
                    {"type":"task-started","uuid":"b","timestamp":104},
                    {"type":"queue-stats","queue":"reports","messages":17,"consumers":2}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    let (_, q) = host.get("/api/v1/queues").await;
    let find = |name: &str| {
        q["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()
            .clone()
    };
    let emb = find("embedding");
    assert_eq!(
        (
            emb["depth"].as_u64(),
            emb["active"].as_u64(),
            emb["avg_wait"].as_f64()
        ),
        (Some(1), Some(1), Some(4.0))
    );
    assert_eq!(
        (
            find("reports")["depth"].as_u64(),
            find("reports")["consumers"].as_u64()
        ),
        (Some(17), Some(2))
    );
    let (s, stats) = host.get("/api/admin/celery/queues/stats").await;
    assert_eq!(s, 200);
    assert_eq!(stats["queues"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn seed_002_circuit_breaker_contract() {
    let host = common::start().await;
    let admin = common::admin();
    let (s, b) = host.get("/api/v1/queue/circuit-breaker-status").await;
    assert_eq!(
        (s, b["status"].as_str(), b["data"]["state"].as_str()),
        (200, Some("success"), Some("closed"))
    );
    assert!(b["data"]["opened_at"].is_null() && b["data"]["closed_at"].is_null());
    assert!(b["data"]["metadata"].is_object());

    let viewer = common::token("v", Role::Viewer);
    assert_eq!(
        host.post("/api/v1/queue/open-circuit-breaker", &viewer, "{}")
            .await
            .0,
        403
    );
    let (s, b) = host
        .post(
            "/api/v1/queue/open-circuit-breaker",
            &admin,
            r#"{"reason":"maintenance"}"#,
        )
        .await;
    assert_eq!((s, b["data"]["state"].as_str()), (200, Some("open")));
    assert!(b["data"]["opened_at"].as_str().unwrap().ends_with('Z'));
    assert!(b["data"]["metadata"]["reason"]
        .as_str()
        .unwrap()
        .contains("maintenance"));
    // A client polling sees it on its next poll.
    assert_eq!(
        host.get_as("/api/v1/queue/circuit-breaker-status", &viewer)
            .await
            .1["data"]["state"],
        "open"
    );

    // While open, a job submitted through Vigil is refused with a JSON reason, and
    // nothing is written...
    let (s, e) = host
        .post(
            "/api/admin/celery/jobs/embed",
            &admin,
            r#"{"queue":"celery"}"#,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (503, Some("circuit_open"))
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maintenance"));
    assert_eq!(
        host.get("/api/v1/jobs").await.1["total"],
        0,
        "nothing written"
    );
    // ...but a task that exists in the cluster is a fact: recorded, and marked.
    let (s, b) = host
        .ingest(r#"[{"type":"task-received","uuid":"x","routing_key":"celery"}]"#)
        .await;
    assert_eq!((s, b["accepted"].as_u64()), (202, Some(1)));
    let (_, x) = host.get("/api/v1/tasks/x").await;
    assert_eq!(
        (x["state"].as_str(), x["while_breaker_open"].as_bool()),
        (Some("RECEIVED"), Some(true))
    );
    let (_, h) = host.get("/api/v1/tasks/x/events").await;
    assert_eq!(h["events"][0]["breaker_open"], true);
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"y","routing_key":"other"}"#)
            .await
            .0,
        202
    );

    let (s, b) = host
        .post(
            "/api/v1/queue/close-circuit-breaker",
            &admin,
            r#"{"reason":"done"}"#,
        )
        .await;
    assert_eq!((s, b["data"]["state"].as_str()), (200, Some("closed")));
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"x","routing_key":"celery"}"#)
            .await
            .0,
        202
    );
    assert_eq!(
        host.post("/api/v1/queue/open-circuit-breaker", &admin, "{bad")
            .await
            .0,
        400
    );
    assert_eq!(
        host.post(
            "/api/v1/queue/open-circuit-breaker",
            &admin,
            r#"{"reason":5}"#
        )
        .await
        .0,
        422
    );
}

#[tokio::test]
async fn breaker_opens_itself_on_failure_rate() {
    let host = common::start().await;
    let mut sse =
        common::SseClient::connect(&host.url("/events?topics=breakers"), &common::admin()).await;
    let failures: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"type":"task-failed","uuid":"f{i}","routing_key":"flaky","exception":"boom"}}"#
            )
        })
        .collect();
    assert_eq!(
        host.ingest(&format!("[{}]", failures.join(","))).await.0,
        202
    );
    let m = sse.next().await;
    assert_eq!(m.event, "circuit_breaker");
    assert!(m.data.contains(r#""state":"open""#), "{}", m.data);
    let (_, b) = host
        .get("/api/v1/queue/circuit-breaker-status?queue=flaky")
        .await;
    assert_eq!(b["data"]["state"], "open");
    // Job submission to the queue is now refused; the failures themselves were recorded.
    let (s, e) = host
        .post(
            "/api/admin/celery/jobs/retry",
            &common::admin(),
            r#"{"queue":"flaky"}"#,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (503, Some("circuit_open"))
    );
    assert_eq!(host.get("/api/v1/tasks/f9").await.1["state"], "FAILURE");
}

#[tokio::test]
async fn a_batch_with_failures_opens_the_breaker_and_loses_nothing() {
    // Issue 10: twelve tasks of one queue, received and failed, in one batch. The
    // failures open the breaker part-way; every later event is still recorded.
    let host = common::start().await;
    let events: Vec<String> = (0..12)
        .flat_map(|i| {
            [
                format!(r#"{{"type":"task-received","uuid":"b{i}","routing_key":"batchq","timestamp":{i}}}"#),
                format!(r#"{{"type":"task-failed","uuid":"b{i}","exception":"E()","hostname":"w1","timestamp":{i}.5}}"#),
            ]
        })
        .collect();
    let (s, b) = host.ingest(&format!("[{}]", events.join(","))).await;
    assert_eq!(
        (
            s,
            b["accepted"].as_u64(),
            b["refused"].as_array().map(Vec::len)
        ),
        (202, Some(24), Some(0))
    );
    let (_, list) = host.get("/api/v1/tasks?queue=batchq&state=FAILURE").await;
    assert_eq!(list["total"], 12);
    let (_, st) = host
        .get("/api/v1/queue/circuit-breaker-status?queue=batchq")
        .await;
    assert_eq!(st["data"]["state"], "open");
    assert_eq!(
        host.get("/api/v1/workers/w1").await.1["failed"],
        12,
        "derived from task events"
    );
}

#[tokio::test]
async fn seed_000_admin_tasks_and_revoke() {
    let host = common::start().await;
    let batch = r#"[{"type":"task-received","uuid":"t1","name":"embed","routing_key":"embedding","timestamp":1},
                    {"type":"task-received","uuid":"t2","name":"add","routing_key":"celery","timestamp":2},
                    {"type":"task-succeeded","uuid":"t3","name":"add","routing_key":"celery","timestamp":3}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    let (s, list) = host
        .get("/api/admin/celery/tasks?queue=celery&limit=10")
        .await;
    assert_eq!((s, ids(&list)), (200, vec!["t3", "t2"]));
    assert!(
        list[0]["timestamp"].as_str().is_some(),
        "seed task shape has a timestamp"
    );
    assert_eq!(
        ids(&host.get("/api/admin/celery/tasks?state=SUCCESS").await.1),
        ["t3"]
    );
    let viewer = common::token("v", Role::Viewer);
    assert_eq!(host.get_as("/api/admin/celery/tasks", &viewer).await.0, 403);

    let admin = common::admin();
    let mut cmds = common::SseClient::connect(&host.url("/events?topics=commands"), &admin).await;
    let (s, r) = host
        .post(
            "/api/admin/celery/tasks/t1/revoke?terminate=true",
            &admin,
            "",
        )
        .await;
    assert_eq!(
        (s, r),
        (200, serde_json::json!({"status":"revoked","task_id":"t1"}))
    );
    let cmd: Value = serde_json::from_str(&cmds.next().await.data).unwrap();
    assert_eq!(
        (
            cmd["data"]["command"].as_str(),
            cmd["data"]["terminate"].as_bool()
        ),
        (Some("revoke"), Some(true))
    );
    assert_eq!(host.get("/api/v1/tasks/t1").await.1["state"], "REVOKED");
    assert_eq!(
        host.post("/api/admin/celery/tasks/t1/revoke", &admin, "")
            .await
            .0,
        409
    );
    assert_eq!(
        host.post("/api/admin/celery/tasks/nope/revoke", &admin, "")
            .await
            .0,
        404
    );
    assert_eq!(
        host.post(
            "/api/admin/celery/tasks/t2/revoke?terminate=maybe",
            &admin,
            ""
        )
        .await
        .0,
        422
    );
}

#[tokio::test]
async fn seed_000_job_submit_and_long_poll_wait() {
    let host = common::start().await;
    let admin = common::admin();
    let (s, job) = host
        .post("/api/admin/celery/jobs/embed-all", &admin, "")
        .await;
    assert_eq!((s, job["status"].as_str()), (202, Some("submitted")));
    let id = job["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        host.get(&format!("/api/v1/tasks/{id}")).await.1["state"],
        "PENDING",
        "sent, not yet received by a worker"
    );
    // The job is listed as a job, for its owner (the submitting admin) only.
    let (_, jobs) = host.get("/api/v1/jobs").await;
    assert_eq!(
        (jobs["total"].as_u64(), jobs["jobs"][0]["id"].as_str()),
        (Some(1), Some(id.as_str()))
    );
    assert_eq!(host.get("/api/v1/tasks").await.1["total"], 1);
    let viewer = common::token("someone", Role::Viewer);
    assert_eq!(host.get_as("/api/v1/jobs", &viewer).await.1["total"], 0);

    let started = Instant::now();
    let (s, pending) = host
        .get(&format!("/api/admin/celery/jobs/{id}/wait?timeout=1"))
        .await;
    assert_eq!(
        (s, pending),
        (
            200,
            serde_json::json!({"status":"pending","message":"Still running"})
        )
    );
    assert!(started.elapsed() >= Duration::from_secs(1));

    let waiter = {
        let url = host.url(&format!("/api/admin/celery/jobs/{id}/wait?timeout=20"));
        let admin = admin.clone();
        tokio::spawn(async move {
            let r = common::send(reqwest::Client::new().get(url).bearer_auth(admin)).await;
            (r, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = format!(r#"{{"type":"task-succeeded","uuid":"{id}","result":"42"}}"#);
    assert_eq!(host.ingest(&body).await.0, 202);
    let acked = Instant::now();
    let ((s, done), returned) = waiter.await.unwrap();
    assert_eq!(
        (s, done["status"].as_str(), done["result"].as_str()),
        (200, Some("completed"), Some("42"))
    );
    let late = returned.saturating_duration_since(acked);
    println!("long-poll returned {late:?} after the completing event was acknowledged");
    assert!(late < Duration::from_millis(500), "returned {late:?} late");
    assert_eq!(
        host.get("/api/admin/celery/jobs/nope/wait?timeout=1")
            .await
            .0,
        404
    );
    assert_eq!(
        host.get(&format!("/api/admin/celery/jobs/{id}/wait?timeout=9999"))
            .await
            .0,
        422
    );
}

#[tokio::test]
async fn event_feed_returns_everything_after_the_cursor_or_waits() {
    let host = common::start().await;
    let batch = r#"[{"type":"task-received","uuid":"a","owner":"alice"},{"type":"task-received","uuid":"b","owner":"bob"}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    // The relay sequences asynchronously; wait until both are in the log. Each task
    // change is one entry, served as its `task_update` followed by the seed 003 `job-*`
    // derived from it, with the same seq.
    let mut feed = Value::Null;
    for _ in 0..50 {
        feed = host.get("/api/v1/events?since=0&timeout=0").await.1;
        if feed["events"].as_array().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seqs: Vec<u64> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!((seqs, feed["seq"].as_u64()), (vec![1, 1, 2, 2], Some(2)));
    let kinds: Vec<&str> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["task_update", "job-queued", "task_update", "job-queued"]
    );
    // A limit never splits an entry from what derives from it.
    let (_, one) = host.get("/api/v1/events?since=0&timeout=0&limit=3").await;
    assert_eq!(
        (one["events"].as_array().map(Vec::len), one["seq"].as_u64()),
        (Some(2), Some(1))
    );
    let alice = common::token("alice", Role::Viewer);
    let mine = host
        .get_as("/api/v1/events?since=0&timeout=0", &alice)
        .await
        .1;
    let ids: Vec<&str> = mine["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "a"], "viewers get only their own events");

    let url = host.url("/api/v1/events?since=2&timeout=20&topics=celery:tasks");
    let waiter = tokio::spawn(async move {
        common::send(reqwest::Client::new().get(url).bearer_auth(common::admin())).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        host.ingest(r#"{"type":"task-started","uuid":"a"}"#).await.0,
        202
    );
    let (s, next) = waiter.await.unwrap();
    // Only the task update (3), not the `job-started` derived from it.
    assert_eq!(
        (
            s,
            next["events"].as_array().map(Vec::len),
            next["events"][0]["seq"].as_u64(),
            next["seq"].as_u64()
        ),
        (200, Some(1), Some(3), Some(3))
    );
    let (_, empty) = host.get("/api/v1/events?since=3&timeout=1").await;
    assert_eq!(
        (
            empty["events"].as_array().unwrap().len(),
            empty["seq"].as_u64()
        ),
        (0, Some(3))
    );
    assert_eq!(host.get("/api/v1/events?since=abc").await.0, 422);
}

#[tokio::test]
async fn task_filters_search_paging_and_sorting() {
    let host = common::start().await;
    let batch = r#"[{"type":"task-received","uuid":"a","name":"reports.build","hostname":"w1","args":"(\"q3\",)","timestamp":30},
                    {"type":"task-received","uuid":"b","name":"emails.send","hostname":"w2","timestamp":20},
                    {"type":"task-received","uuid":"c","name":"reports.build","hostname":"w2","timestamp":10}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    let get = |p: String| {
        let url = host.url(&p);
        async move {
            common::send(reqwest::Client::new().get(url).bearer_auth(common::admin()))
                .await
                .1
        }
    };
    assert_eq!(
        ids(&get("/api/v1/tasks?name=reports.build".into()).await["tasks"]),
        ["a", "c"]
    );
    assert_eq!(
        ids(&get("/api/v1/tasks?worker=w2".into()).await["tasks"]),
        ["b", "c"]
    );
    assert_eq!(
        ids(&get("/api/v1/tasks?search=Q3".into()).await["tasks"]),
        ["a"]
    );
    assert_eq!(
        ids(&get("/api/v1/tasks?sort_by=received_at".into()).await["tasks"]),
        ["c", "b", "a"]
    );
    let page = get("/api/v1/tasks?sort_by=received_at&limit=1&offset=1".into()).await;
    assert_eq!(
        (ids(&page["tasks"]), page["total"].as_u64()),
        (vec!["b"], Some(3))
    );
    assert_eq!(
        ids(&get("/api/v1/tasks?received_after=15&received_before=25".into()).await["tasks"]),
        ["b"]
    );
    assert_eq!(host.get("/api/v1/tasks?sort_by=color").await.0, 422);
}

#[tokio::test]
async fn dashboard_snapshot_and_token_refresh() {
    let host = common::start().await;
    let batch = r#"[{"type":"task-received","uuid":"a","owner":"alice","routing_key":"q"},
                    {"type":"worker-online","hostname":"w1"},{"type":"system-metrics","cpu":12}]"#;
    assert_eq!(host.ingest(batch).await.0, 202);
    let (s, d) = host.get("/api/v1/dashboard").await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            d["tasks"][0]["id"].as_str(),
            d["counts"]["RECEIVED"].as_u64()
        ),
        (Some("a"), Some(1))
    );
    assert_eq!(
        (
            d["workers"][0]["id"].as_str(),
            d["system_metrics"]["cpu"].as_u64()
        ),
        (Some("w1"), Some(12))
    );
    assert!(d["seq"].is_u64() && d["queues"].is_array() && d["breakers"].is_array());
    let bob = common::token("bob", Role::Viewer);
    let (_, d) = host.get_as("/api/v1/dashboard", &bob).await;
    assert_eq!(
        (
            d["tasks"].as_array().unwrap().len(),
            d["system_metrics"].is_null()
        ),
        (0, true)
    );

    let (s, r) = host.post("/api/auth/refresh", &bob, "").await;
    assert_eq!((s, r["token_type"].as_str()), (200, Some("bearer")));
    let fresh = r["access_token"].as_str().unwrap();
    assert_eq!(host.get_as("/api/v1/tasks", fresh).await.0, 200);
    let expired = common::token_with("bob", Role::Viewer, -5, common::SECRET);
    assert_eq!(host.post("/api/auth/refresh", &expired, "").await.0, 401);
}

#[tokio::test]
async fn silent_workers_go_offline_with_an_event() {
    let host = common::start_with(|c| c.sweep_interval = Duration::from_millis(200)).await;
    let mut sse =
        common::SseClient::connect(&host.url("/events?topics=workers"), &common::admin()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let body = format!(
        r#"[{{"type":"worker-online","hostname":"old","timestamp":{}}},{{"type":"worker-online","hostname":"fresh"}}]"#,
        now - 100.0
    );
    assert_eq!(host.ingest(&body).await.0, 202);
    assert_eq!(sse.next().await.event, "worker_registered");
    assert_eq!(sse.next().await.event, "worker_registered");
    // The host's periodic sweep marks the silent one offline, without anyone asking.
    let m = sse.next().await;
    assert_eq!(m.event, "worker_deregistered");
    assert!(m.data.contains(r#""key":"old""#), "{}", m.data);
    assert_eq!(host.get("/api/v1/workers/old").await.1["status"], "offline");
    assert_eq!(
        host.get("/api/v1/workers/fresh").await.1["status"],
        "online"
    );
    let viewer = common::token("v", Role::Viewer);
    assert_eq!(host.post("/api/v1/workers/sweep", &viewer, "").await.0, 403);
}
