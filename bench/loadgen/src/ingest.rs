//! Ingest throughput: `concurrency` producers post batches of Celery events to the
//! ingest endpoint as fast as they are answered, for a while; how many events a second
//! were acknowledged (202), and how long an acknowledgement took.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Header of the ingest table; one row per (server, store).
pub const HEADER: &str = "| server | producers × events per request | events/s acknowledged | p50 ms | p99 ms | refused |\n| --- | --- | ---: | ---: | ---: | ---: |";

/// What one producer saw.
#[derive(Default)]
struct Tally {
    acknowledged: u64,
    refused: u64,
    answer_us: Vec<u64>,
}

/// Runs `concurrency` producers against `base` for `seconds`; the markdown row.
pub async fn run(
    server: &str,
    base: &str,
    token: &str,
    concurrency: usize,
    batch: usize,
    seconds: f64,
) -> String {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client with default settings");
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let producers = (0..concurrency).map(|p| {
        let (http, url, token) = (
            http.clone(),
            format!("{base}/api/v1/events"),
            token.to_owned(),
        );
        tokio::spawn(async move { produce(&http, &url, &token, p, batch, until).await })
    });
    let mut all = Tally::default();
    for t in futures_join(producers).await {
        all.acknowledged += t.acknowledged;
        all.refused += t.refused;
        all.answer_us.extend(t.answer_us);
    }
    all.answer_us.sort_unstable();
    let ms = |p: f64| match all.answer_us.len() {
        0 => "-".to_owned(),
        n => format!(
            "{:.1}",
            all.answer_us[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0
        ),
    };
    format!(
        "| {server} | {concurrency} × {batch} | {:.0} | {} | {} | {} |",
        all.acknowledged as f64 / seconds,
        ms(0.5),
        ms(0.99),
        all.refused
    )
}

async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(v) = t.await {
            out.push(v);
        }
    }
    out
}

/// One producer: a batch of new tasks per request until `until`.
async fn produce(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    p: usize,
    batch: usize,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut n = 0u64;
    while Instant::now() < until {
        let body = Value::Array(
            (0..batch)
                .map(|_| {
                    n += 1;
                    event(p, n)
                })
                .collect(),
        );
        let started = Instant::now();
        match http.post(url).bearer_auth(token).json(&body).send().await {
            Ok(r) if r.status().as_u16() == 202 => {
                tally.acknowledged += batch as u64;
                tally.answer_us.push(started.elapsed().as_micros() as u64);
            }
            _ => tally.refused += 1,
        }
    }
    tally
}

fn event(p: usize, n: u64) -> Value {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    json!({
        "type": "task-received", "uuid": format!("ingest-{p}-{n}"), "name": "bench.ingest",
        "routing_key": "default", "timestamp": ts,
    })
}
