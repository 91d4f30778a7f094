//! How long one publish takes with many connections sharing one filter: the hub's
//! whole pass (the dispatch component's decision and queueing the payload to every
//! connection). Not a test of correctness, and slow: run it on purpose with
//!
//! ```sh
//! cargo test --release -p vigil-push --test publish_bench -- --ignored --nocapture
//! ```
//!
//! (`PUBLISH_BENCH_N` and `PUBLISH_BENCH_ROUNDS` change the size.)

mod common;

use std::time::{Duration, Instant};

use common::{event, hub, received, settle, subscribe};
use vigil_push::config::PushConfig;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn one_publish_to_many_connections_sharing_one_filter() {
    let n = env("PUBLISH_BENCH_N", 10_000);
    let rounds = env("PUBLISH_BENCH_ROUNDS", 200);
    // Unlimited rate: every round is sent, none held for a batch.
    let config = PushConfig {
        rate_per_sec: 0,
        ..PushConfig::default()
    };
    let (hub, metrics) = hub(config).await;
    let subs = subscribe(&hub, "celery:tasks", n).await;
    let mut took = Vec::with_capacity(rounds);
    for seq in 1..=rounds as u64 {
        let started = Instant::now();
        hub.publish(vec![event(seq, "celery:tasks", "k")]).await;
        settle(&hub, &subs[0]).await;
        took.push(started.elapsed());
        // Connections read what they were sent (outside the timing).
        for sub in &subs {
            assert_eq!(received(sub).len(), 1, "every connection got round {seq}");
        }
    }
    took.sort();
    let mean = took.iter().sum::<Duration>() / rounds as u32;
    let at = |q: f64| took[((rounds - 1) as f64 * q) as usize];
    // Of that, the dispatch component's calls (the records through the canonical ABI
    // and its decisions).
    let text = metrics.render();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let call =
        value("vigil_dispatch_call_seconds_sum ") / value("vigil_dispatch_call_seconds_count ");
    println!(
        "one publish, {n} connections sharing one filter, {rounds} rounds: \
         mean {mean:?}, median {:?}, p90 {:?}, min {:?}; dispatch call mean {:.3} ms",
        at(0.5),
        at(0.9),
        took[0],
        call * 1e3
    );
}
