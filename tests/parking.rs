//! Long-polls parked by the host (issue 14): while they wait they hold no component
//! instance, so more of them than the pool's long-poll share wait at once while short
//! requests are still served; one event wakes every one it concerns, on this host or
//! another on the same Redis; a filtered-out event parks them again; a client that
//! hangs up frees its place (`vigil_long_polls_parked`); waits ending together share
//! one timeout answer; shutdown answers them at once.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use vigil_core::auth::Role;

/// How long a woken long-poll may take to answer on a loaded test machine (the target
/// on a quiet one is 50 ms p99; the benchmark measures it).
const WAKE_BOUND: Duration = Duration::from_secs(10);

/// Long-polls parked at once in the capacity test: more than the default pool's
/// long-poll share (767 of 1 024 instances), so parking is what lets them all wait.
const MANY: usize = 2_000;

/// A value of `/metrics`.
async fn metric(host: &common::TestHost, name: &str) -> u64 {
    let value = host.metric(name).await;
    value.unwrap_or_else(|| panic!("{name} is in /metrics")) as u64
}

async fn parked(host: &common::TestHost) -> u64 {
    metric(host, "vigil_long_polls_parked").await
}

/// Waits until `n` long-polls are parked.
async fn until_parked(host: &common::TestHost, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while parked(host).await != n {
        assert!(
            Instant::now() < deadline,
            "parked: {} (want {n})",
            parked(host).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A long-poll of `path` on `host`, running on its own task.
fn long_get(
    host: &common::TestHost,
    client: &reqwest::Client,
    path: &str,
    token: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let req = client.get(host.url(path)).bearer_auth(token);
    tokio::spawn(common::send(req))
}

async fn submit(host: &common::TestHost) -> String {
    let (s, job) = host
        .post("/api/admin/celery/jobs/park.job", &common::admin(), "{}")
        .await;
    assert_eq!(s, 202, "{job}");
    job["job_id"].as_str().unwrap().to_owned()
}

async fn head(host: &common::TestHost) -> u64 {
    host.get("/api/v1/events?timeout=0").await.1["seq"]
        .as_u64()
        .unwrap()
}

fn no_rate_limit() -> impl FnOnce(&mut vigil::config::ServeConfig) {
    |c| c.rest_rate_per_sec = 0
}

#[tokio::test]
async fn thousands_park_without_instances_and_one_event_wakes_them_all() {
    let host = common::start_with(no_rate_limit()).await;
    let id = submit(&host).await;
    let since = head(&host).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let admin = common::admin();
    let feed = format!("/api/v1/events?since={since}&timeout=120&topics=celery:tasks");
    let wait = format!("/api/admin/celery/jobs/{id}/wait?timeout=120");
    let waits: Vec<_> = (0..MANY)
        .map(|i| {
            let path = if i % 2 == 0 { &feed } else { &wait };
            long_get(&host, &client, path, &admin)
        })
        .collect();
    until_parked(&host, MANY as u64).await;
    // Short requests are served meanwhile, at once.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(host.get("/api/v1/tasks?limit=5").await.0, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let calls = metric(&host, "vigil_long_poll_calls_total").await;
    let done = json!({"type": "task-succeeded", "uuid": id, "result": "42"});
    let acked = Instant::now();
    assert_eq!(host.ingest(&done.to_string()).await.0, 202);
    for (i, w) in waits.into_iter().enumerate() {
        let (s, body) = tokio::time::timeout(WAKE_BOUND, w)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(s, 200, "{body}");
        if i % 2 == 0 {
            assert_eq!(body["events"][0]["data"]["id"], id.as_str(), "{body}");
        } else {
            assert_eq!(body["status"], "completed", "{body}");
        }
    }
    let calls = metric(&host, "vigil_long_poll_calls_total").await - calls;
    eprintln!(
        "{MANY} long-polls answered {:?} after the acknowledgement, {calls} component calls",
        acked.elapsed()
    );
    assert_eq!(parked(&host).await, 0);
    // Two groups (the feed, the job's wait): the component was asked about once each.
    assert!((2..=MANY as u64 / 100).contains(&calls), "{calls} calls");
}

#[tokio::test]
async fn an_event_a_parked_long_poll_may_not_see_parks_it_again_until_its_timeout() {
    let host = common::start_with(no_rate_limit()).await;
    let since = head(&host).await;
    let client = reqwest::Client::new();
    let viewer = common::token("bob", Role::Viewer);
    let path = format!("/api/v1/events?since={since}&timeout=3");
    let started = Instant::now();
    let waiting = long_get(&host, &client, &path, &viewer);
    until_parked(&host, 1).await;
    // Alice's task: it wakes bob's feed (no topics), which finds nothing for him.
    let alice = json!({"type": "task-received", "uuid": "a1", "owner": "alice"});
    assert_eq!(host.ingest(&alice.to_string()).await.0, 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(parked(&host).await, 1, "parked again");
    let (s, body) = waiting.await.unwrap();
    assert_eq!((s, &body["events"]), (200, &json!([])), "{body}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(
        body["seq"].as_u64().unwrap() > since,
        "the cursor moved past alice's event"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_while_parked_frees_its_place() {
    let host = common::start_with(no_rate_limit()).await;
    let mut socket = tokio::net::TcpStream::connect(host.running.addr)
        .await
        .unwrap();
    let request = format!(
        "GET /api/v1/events?timeout=120 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        common::admin()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    until_parked(&host, 1).await;
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(10);
    while parked(&host).await != 0 {
        assert!(Instant::now() < deadline, "the place was not freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_long_poll_parked_on_one_host_wakes_for_an_event_ingested_on_another() {
    let (_redis, hosts) = common::start_cluster(2, |c| c.rest_rate_per_sec = 0).await;
    let (a, b) = (&hosts[0], &hosts[1]);
    let id = submit(a).await;
    let since = head(b).await;
    let client = reqwest::Client::new();
    let admin = common::admin();
    let feed = format!("/api/v1/events?since={since}&timeout=60&topics=celery:tasks");
    let wait = format!("/api/admin/celery/jobs/{id}/wait?timeout=60");
    let on_b = long_get(b, &client, &feed, &admin);
    let job_on_b = long_get(b, &client, &wait, &admin);
    until_parked(b, 2).await;
    let done = json!({"type": "task-succeeded", "uuid": id});
    let acked = Instant::now();
    assert_eq!(a.ingest(&done.to_string()).await.0, 202);
    let (s, body) = tokio::time::timeout(WAKE_BOUND, on_b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s, &body["events"][0]["data"]["id"]),
        (200, &json!(id)),
        "{body}"
    );
    let (s, body) = tokio::time::timeout(WAKE_BOUND, job_on_b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
    eprintln!(
        "host B answered {:?} after host A's acknowledgement",
        acked.elapsed()
    );
}

#[tokio::test]
async fn shutdown_answers_parked_long_polls_at_once() {
    let host = common::start_with(no_rate_limit()).await;
    let id = submit(&host).await;
    let client = reqwest::Client::new();
    let admin = common::admin();
    let wait = long_get(
        &host,
        &client,
        &format!("/api/admin/celery/jobs/{id}/wait?timeout=120"),
        &admin,
    );
    let feed = long_get(&host, &client, "/api/v1/events?timeout=120", &admin);
    until_parked(&host, 2).await;
    let started = Instant::now();
    let stopping = tokio::spawn(host.running.stop());
    let (s, body) = wait.await.unwrap();
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    let (s, body) = feed.await.unwrap();
    assert_eq!((s, &body["events"]), (200, &json!([])), "{body}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the drain does not wait for the long-polls' timeouts")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn long_polls_timing_out_together_share_one_timeout_answer() {
    const CLIENTS: usize = 200;
    let host = common::start_with(no_rate_limit()).await;
    let since = head(&host).await;
    let client = reqwest::Client::new();
    let admin = common::admin();
    let path = format!("/api/v1/events?since={since}&timeout=5&topics=nothing");
    let started = Instant::now();
    let waits: Vec<_> = (0..CLIENTS)
        .map(|_| long_get(&host, &client, &path, &admin))
        .collect();
    until_parked(&host, CLIENTS as u64).await;
    let arrived = started.elapsed();
    let calls = metric(&host, "vigil_long_poll_calls_total").await;
    for w in waits {
        let (s, body) = w.await.unwrap();
        assert_eq!(
            (s, &body["events"], body["seq"].as_u64()),
            (200, &json!([]), Some(since))
        );
    }
    let calls = metric(&host, "vigil_long_poll_calls_total").await - calls;
    // One call per 50 ms window their deadlines fall in (they arrived within `arrived`).
    let windows = arrived.as_millis() as u64 / 50 + 2;
    eprintln!("{CLIENTS} timeouts, arrived within {arrived:?}: {calls} component calls");
    assert!(calls <= windows, "{calls} calls for {CLIENTS} timeouts");
}

/// A feed long-poll that names no cursor reads "from now": an event published while it
/// is parked is its answer, not part of a later "now" (the Celery bridge's command feed
/// polls this way first).
#[tokio::test]
async fn a_long_poll_from_now_gets_the_event_published_while_it_was_parked() {
    let host = common::start_with(no_rate_limit()).await;
    let client = reqwest::Client::new();
    let path = "/api/v1/events?topics=celery:tasks&timeout=60";
    let from_now = long_get(&host, &client, path, &common::admin());
    until_parked(&host, 1).await;
    let event = r#"{"type":"task-received","uuid":"while-parked"}"#;
    assert_eq!(host.ingest(event).await.0, 202);
    let (s, body) = tokio::time::timeout(WAKE_BOUND, from_now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s, &body["events"][0]["key"]),
        (200, &json!("while-parked")),
        "{body}"
    );
}
