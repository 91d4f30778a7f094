//! The hub decides once per distinct subscription, not once per connection: the
//! dispatch component sees one record for every connection sharing a filter, encoding
//! and rate state, and the hub fans its decisions out to each of them.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::{event, hub, received, seqs, settle, subscribe};
use vigil_push::config::PushConfig;

const TOPIC: &str = "celery:tasks";

#[tokio::test(start_paused = true)]
async fn a_thousand_connections_with_one_filter_are_one_record() {
    let (hub, metrics) = hub(PushConfig::default()).await;
    let mut subs = subscribe(&hub, TOPIC, 500).await;
    // Each bucket is stamped with its subscribe time: later ones must still share.
    std::thread::sleep(Duration::from_millis(5));
    subs.extend(subscribe(&hub, TOPIC, 500).await);

    let events = vec![
        event(1, TOPIC, "a"),
        event(2, TOPIC, "b"),
        event(3, TOPIC, "c"),
    ];
    hub.publish(events).await;
    settle(&hub, &subs[0]).await;

    assert_eq!(
        metrics.dispatch_records.load(Relaxed),
        1,
        "one record decided"
    );
    assert_eq!(metrics.subscriptions_distinct.load(Relaxed), 1);
    let first = received(&subs[0]);
    assert_eq!(seqs(&first, "task_update"), [1, 2, 3]);
    for sub in &subs[1..] {
        let got = received(sub);
        assert_eq!(seqs(&got, "task_update"), [1, 2, 3]);
        assert!(
            got.iter().zip(&first).all(|(a, b)| Arc::ptr_eq(a, b)),
            "every connection queues the same shared payloads"
        );
    }
    assert!(metrics
        .render()
        .contains("vigil_messages_sent_total{event=\"task_update\"} 3000"));
    assert!(metrics
        .render()
        .contains("vigil_push_subscriptions_distinct 1"));
}

#[tokio::test(start_paused = true)]
async fn two_filters_are_two_records_and_each_gets_its_own() {
    let (hub, metrics) = hub(PushConfig::default()).await;
    let a = subscribe(&hub, "a", 600).await;
    let b = subscribe(&hub, "b", 400).await;

    hub.publish(vec![event(1, "a", "x"), event(2, "b", "y")])
        .await;
    settle(&hub, &a[0]).await;

    assert_eq!(metrics.dispatch_records.load(Relaxed), 2);
    assert_eq!(metrics.subscriptions_distinct.load(Relaxed), 2);
    for sub in &a {
        assert_eq!(seqs(&received(sub), "task_update"), [1]);
    }
    for sub in &b {
        assert_eq!(seqs(&received(sub), "task_update"), [2]);
    }

    // One of them leaves: the rest are still one record per filter.
    drop(b);
    hub.publish(vec![event(3, "b", "y")]).await;
    settle(&hub, &a[0]).await;
    assert_eq!(metrics.subscriptions_distinct.load(Relaxed), 1);
    assert!(a.iter().all(|s| received(s).is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_member_that_degrades_splits_off_and_rejoins_once_recovered() {
    let config = PushConfig {
        rate_per_sec: 0,
        queue_capacity: 8,
        ..PushConfig::default()
    };
    let (hub, metrics) = hub(config).await;
    let subs = subscribe(&hub, TOPIC, 20).await;
    let (slow, readers) = subs.split_first().unwrap();
    let mut slow_got = Vec::new();

    // The slow one reads nothing: after 7 its queue is nearly full (more than 6 of 8).
    for seq in 1..=7 {
        hub.publish(vec![event(seq, TOPIC, &format!("k{seq}"))])
            .await;
        settle(&hub, slow).await;
        for r in readers {
            assert_eq!(seqs(&received(r), "task_update"), [seq]);
        }
    }
    assert_eq!(metrics.subscriptions_distinct.load(Relaxed), 1);

    // The next publish degrades it: a record of its own, holding what the rest are sent.
    let records = metrics.dispatch_records.load(Relaxed);
    hub.publish(vec![event(8, TOPIC, "k8")]).await;
    hub.publish(vec![event(9, TOPIC, "k8")]).await;
    settle(&hub, slow).await;
    assert_eq!(metrics.subscriptions_distinct.load(Relaxed), 2);
    assert_eq!(metrics.dispatch_records.load(Relaxed), records + 4);
    for r in readers {
        assert_eq!(seqs(&received(r), "task_update"), [8, 9]);
    }
    slow_got.extend(received(slow));
    assert_eq!(seqs(&slow_got, "task_update"), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(seqs(&slow_got, "degraded").len(), 1);
    assert_eq!(
        metrics.conflated.load(Relaxed),
        1,
        "9 replaced 8, for it alone"
    );

    // Drained, it gets the latest state at the next flush, then recovers at the one after.
    tokio::time::sleep(Duration::from_millis(600)).await;
    settle(&hub, slow).await;
    assert_eq!(seqs(&received(slow), "batch_update"), [9]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    settle(&hub, slow).await;
    assert_eq!(seqs(&received(slow), "recovered").len(), 1);

    // Its state equals the others' again: one record, and it is sent everything.
    hub.publish(vec![event(10, TOPIC, "k10")]).await;
    settle(&hub, slow).await;
    assert_eq!(metrics.subscriptions_distinct.load(Relaxed), 1);
    for sub in &subs {
        assert_eq!(seqs(&received(sub), "task_update"), [10]);
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limits_stay_per_connection() {
    // One message a second: the test's real time between publishes buys nothing.
    let config = PushConfig {
        rate_per_sec: 1,
        ..PushConfig::default()
    };
    let (hub, metrics) = hub(config).await;
    let early = subscribe(&hub, TOPIC, 100).await;
    hub.publish(vec![event(1, TOPIC, "a"), event(2, TOPIC, "b")])
        .await;
    settle(&hub, &early[0]).await;
    for sub in &early {
        assert_eq!(seqs(&received(sub), "task_update"), [1], "2 is held");
    }
    assert_eq!(metrics.rate_limited.load(Relaxed), 100);

    // Newcomers with the same filter have their own full bucket: they are sent 3 while
    // the early ones hold it.
    let late = subscribe(&hub, TOPIC, 100).await;
    hub.publish(vec![event(3, TOPIC, "c")]).await;
    settle(&hub, &early[0]).await;
    assert_eq!(metrics.subscriptions_distinct.load(Relaxed), 2);
    for sub in &early {
        assert!(received(sub).is_empty());
    }
    for sub in &late {
        assert_eq!(seqs(&received(sub), "task_update"), [3]);
    }

    // The flush sends each early connection what it held, encoded once for all of them.
    tokio::time::sleep(Duration::from_millis(600)).await;
    settle(&hub, &early[0]).await;
    let first = received(&early[0]);
    assert_eq!(seqs(&first, "batch_update"), [3]);
    for sub in &early[1..] {
        let got = received(sub);
        assert_eq!(got.len(), 1);
        assert!(Arc::ptr_eq(&got[0], &first[0]));
    }
    assert!(late.iter().all(|s| received(s).is_empty()));
    assert_eq!(metrics.batches.load(Relaxed), 100);
}
