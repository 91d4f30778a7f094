//! Killing the host (SIGKILL, no shutdown) loses nothing it acknowledged.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts the real `vigil` binary on `data`, returning it and its base URL.
fn spawn(data: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(common::manifest())
        .arg("--data-dir")
        .arg(data)
        .env("VIGIL_JWT_SECRET", common::SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("vigil listening on ")
        .expect("listening line")
        .to_owned();
    (child, base)
}

#[tokio::test]
async fn kill_9_and_restart_keeps_tasks_and_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, base) = spawn(dir.path());
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

    let (mut second, base) = spawn(dir.path());
    let get = client
        .get(format!("{base}/api/v1/tasks/keep-me"))
        .bearer_auth(common::admin());
    let (status, task) = common::send(get).await;
    assert_eq!(status, 200);
    assert_eq!(
        (task["name"].as_str(), task["state"].as_str()),
        (Some("etl"), Some("RECEIVED"))
    );

    // The event log continues where it was: the next event is sequence 2, not 1.
    let mut sse = common::SseClient::connect(&format!("{base}/events"), &common::admin()).await;
    let (status, _) =
        common::send(post(&base, r#"{"type":"task-started","uuid":"keep-me"}"#)).await;
    assert_eq!(status, 202);
    let m = sse.next().await;
    assert_eq!(m.id.as_deref(), Some("2"));
    second.kill().unwrap();
    second.wait().unwrap();
}
