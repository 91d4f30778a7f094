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

    // The event log continues where it was: the first run logged two events
    // (`task_update` and seed 003's `job-queued`), so the next is sequence 3, not 1.
    let mut sse = common::SseClient::connect(&format!("{base}/events"), &common::admin()).await;
    let (status, _) =
        common::send(post(&base, r#"{"type":"task-started","uuid":"keep-me"}"#)).await;
    assert_eq!(status, 202);
    let m = sse.next().await;
    assert_eq!(m.id.as_deref(), Some("3"));
    second.kill().unwrap();
    second.wait().unwrap();
}
