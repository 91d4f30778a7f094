//! Long-polls past the host's 30 s per-request deadline answer normally at their own
//! timeout: seed 000's job wait (`timeout=60`, and its default with no `timeout`), and
//! the event feed at 35 s and at its longest documented timeout (300 s). The waits run
//! concurrently, so the suite takes as long as the longest one.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

/// How late an answer may come after its timeout (the component polls every few
/// hundred milliseconds; the machine may be busy).
const SLACK: Duration = Duration::from_secs(5);

async fn timed_get(host: &common::TestHost, path: String) -> (Duration, u16, Value) {
    let started = Instant::now();
    let (status, body) = common::send(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(400))
            .build()
            .unwrap()
            .get(host.url(&path))
            .bearer_auth(common::admin()),
    )
    .await;
    (started.elapsed(), status, body)
}

fn assert_on_time(what: &str, (took, status, body): &(Duration, u16, Value), secs: u64) {
    assert_eq!(*status, 200, "{what}: {body}");
    let wanted = Duration::from_secs(secs);
    assert!(
        *took >= wanted && *took < wanted + SLACK,
        "{what}: answered after {took:?}, wanted {wanted:?}"
    );
}

#[tokio::test]
async fn long_polls_answer_at_their_timeout_not_at_the_hosts_deadline() {
    let host = common::start().await;
    let (status, job) = host
        .post("/api/admin/celery/jobs/long.job", &common::admin(), "{}")
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();
    let head = host.get("/api/v1/events?since=0&timeout=0").await.1["seq"]
        .as_u64()
        .unwrap();

    let (wait60, wait_default, feed35, feed300) = tokio::join!(
        timed_get(
            &host,
            format!("/api/admin/celery/jobs/{id}/wait?timeout=60")
        ),
        timed_get(&host, format!("/api/admin/celery/jobs/{id}/wait")),
        timed_get(
            &host,
            format!("/api/v1/events?since={head}&timeout=35&topics=none")
        ),
        timed_get(
            &host,
            format!("/api/v1/events?since={head}&timeout=300&topics=none")
        ),
    );
    assert_on_time("job wait, timeout=60", &wait60, 60);
    assert_eq!(wait60.2["status"], "pending");
    assert_eq!(wait60.2["message"], "Still running");
    assert_on_time("job wait, default timeout", &wait_default, 60);
    assert_eq!(wait_default.2["status"], "pending");
    assert_on_time("feed, timeout=35", &feed35, 35);
    assert_eq!(feed35.2["events"], serde_json::json!([]));
    assert_on_time("feed, timeout=300", &feed300, 300);
    assert_eq!(feed300.2["events"], serde_json::json!([]));
}
