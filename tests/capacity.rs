//! Long-polls cannot exhaust the host: past their share of the instance pool they are
//! refused with 503, and ingest keeps working while they wait.

mod common;

use std::time::Duration;

#[tokio::test]
async fn long_polls_beyond_their_share_are_refused_and_ingest_still_works() {
    // Its own test binary: the pool size is read from the environment at start-up.
    std::env::set_var("VIGIL_POOL_INSTANCES", "16"); // 15 for requests: 11 long-poll slots
    let host = common::start().await;
    let polls: Vec<_> = (0..14)
        .map(|_| {
            let url = host.url("/api/v1/events?timeout=20&topics=celery:tasks");
            tokio::spawn(async move {
                common::send(reqwest::Client::new().get(url).bearer_auth(common::admin())).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        host.ingest(r#"{"type":"task-received","uuid":"busy"}"#)
            .await
            .0,
        202
    );
    let mut got = 0;
    let mut refused = 0;
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
            503 => {
                assert_eq!(body["error"]["code"], "unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((got, refused), (11, 3));
}
