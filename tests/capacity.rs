//! Long-polls cannot exhaust the host: parked, they hold no instance, so many more of
//! them than the pool has instances wait at once, and ingest keeps working meanwhile
//! (past `MAX_PARKED` parked long-polls a new one is refused with 503: see
//! `vigil_runtime::park`'s tests).

mod common;

use std::time::Duration;

/// Long-polls waiting at once: more than the pool's 11 long-poll slots (16 instances).
const LONG_POLLS: usize = 40;

#[tokio::test]
async fn long_polls_beyond_the_pool_wait_parked_and_ingest_still_works() {
    // Its own test binary: the pool size is read from the environment at start-up.
    std::env::set_var("VIGIL_POOL_INSTANCES", "16"); // 15 for requests: 11 long-poll slots
    let host = common::start().await;
    let head = host.get("/api/v1/events?timeout=0").await.1["seq"].clone();
    let polls: Vec<_> = (0..LONG_POLLS)
        .map(|_| {
            let url = host.url(&format!(
                "/api/v1/events?since={head}&timeout=20&topics=celery:tasks"
            ));
            tokio::spawn(async move {
                common::send(reqwest::Client::new().get(url).bearer_auth(common::admin())).await
            })
        })
        .collect();
    let parked =
        || async { host.metric("vigil_long_polls_parked").await == Some(LONG_POLLS as f64) };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !parked().await {
        assert!(std::time::Instant::now() < deadline, "not all parked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"busy"}"#)
            .await
            .0,
        202
    );
    let mut got = 0;
    for p in polls {
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), p)
            .await
            .unwrap()
            .unwrap();
        match status {
            200 => {
                assert_eq!(body["events"][0]["data"]["id"], "busy");
                got += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(got, LONG_POLLS);
}
