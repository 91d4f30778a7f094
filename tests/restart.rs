//! Killing the host (SIGKILL, no shutdown) loses nothing it acknowledged.

mod common;

#[tokio::test]
async fn kill_9_and_restart_keeps_tasks_and_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::TestStore::from_env(dir.path());
    let (mut first, base) = common::spawn_binary(dir.path(), &store);
    let client = reqwest::Client::new();
    let post = |base: &str, body: &'static str| {
        client
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(common::producer())
            .body(body)
    };
    let (status, _) = common::send(post(
        &base,
        r#"{"type":"task-received","uuid":"keep-me","name":"etl","routing_key":"batch"}"#,
    ))
    .await;
    assert_eq!(status, 202);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let (mut second, base) = common::spawn_binary(dir.path(), &store);
    let get = client
        .get(format!("{base}/api/v1/tasks/keep-me"))
        .bearer_auth(common::admin());
    let (status, task) = common::send(get).await;
    assert_eq!(status, 200);
    assert_eq!(
        (task["name"].as_str(), task["state"].as_str()),
        (Some("etl"), Some("RECEIVED"))
    );

    // The event log continues where it was: the first run logged one entry (its
    // `task_update`), so the next is sequence 2, not 1.
    let mut sse = common::SseClient::connect(&format!("{base}/events"), &common::admin()).await;
    let (status, _) =
        common::send(post(&base, r#"{"type":"task-started","uuid":"keep-me"}"#)).await;
    assert_eq!(status, 202);
    let m = sse.next().await;
    assert_eq!(m.id.as_deref(), Some("2"));
    second.kill().unwrap();
    second.wait().unwrap();
}

/// Producers sending concurrently (writes of several requests committed in one group):
/// killed mid-flight, the host keeps every event it acknowledged, and a setting it
/// acknowledged (the circuit breaker, no event-log append of its own to commit it).
#[tokio::test]
async fn kill_9_under_concurrent_producers_keeps_everything_acknowledged() {
    /// Producers sending at once, and how long they send before the kill.
    const PRODUCERS: usize = 8;
    const SENDING: std::time::Duration = std::time::Duration::from_millis(1500);
    let dir = tempfile::tempdir().unwrap();
    let store = common::TestStore::from_env(dir.path());
    // No REST rate limit: the producers, and the look-ups after, are many.
    let unlimited = ["--rest-rate", "0"];
    let (mut first, base) = common::spawn_binary_with(dir.path(), &store, &unlimited);
    let client = reqwest::Client::new();
    let (status, _) = common::send(
        client
            .post(format!("{base}/api/v1/queue/open-circuit-breaker"))
            .bearer_auth(common::admin())
            .json(&serde_json::json!({"reason": "kept"})),
    )
    .await;
    assert_eq!(status, 200);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(client.clone(), base.clone(), p)))
        .collect();
    tokio::time::sleep(SENDING).await;
    first.kill().unwrap(); // SIGKILL, with requests in flight
    first.wait().unwrap();
    let mut acknowledged = Vec::new();
    for p in producers {
        acknowledged.extend(p.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "only {} acknowledged",
        acknowledged.len()
    );

    let (mut second, base) = common::spawn_binary_with(dir.path(), &store, &unlimited);
    for id in &acknowledged {
        let get = client
            .get(format!("{base}/api/v1/tasks/{id}"))
            .bearer_auth(common::admin());
        let (status, task) = common::send(get).await;
        assert_eq!(
            (status, task["state"].as_str()),
            (200, Some("RECEIVED")),
            "{id}"
        );
    }
    let status = client
        .get(format!("{base}/api/v1/queue/circuit-breaker-status"))
        .bearer_auth(common::admin());
    let (_, b) = common::send(status).await;
    assert_eq!(b["data"]["state"], "open", "{b}");
    second.kill().unwrap();
    second.wait().unwrap();
}

/// Sends `task-received` events (one, then five, alternately) until the host dies; the
/// ids of those acknowledged with 202.
async fn produce(client: reqwest::Client, base: String, producer: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for n in 0usize.. {
        let ids: Vec<String> = (0..1 + 4 * (n % 2))
            .map(|i| format!("p{producer}-{n}-{i}"))
            .collect();
        let events: Vec<_> = ids
            .iter()
            .map(|id| serde_json::json!({"type": "task-received", "uuid": id, "name": "etl"}))
            .collect();
        let sent = client
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(common::producer())
            .json(&events)
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 202 => acknowledged.extend(ids),
            Ok(r) => panic!(
                "refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => break, // the host is gone
        }
    }
    acknowledged
}
