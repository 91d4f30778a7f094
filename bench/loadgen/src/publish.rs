//! The publisher: `rate` events a second through the server's ingest endpoint, in
//! one small batch per tick, recording each event's send instant just before its
//! request leaves.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::client::Clock;
use crate::ids::id_of;

/// Publish requests in flight at once; more means the server is not keeping up.
const IN_FLIGHT: usize = 32;

/// Which ingest contract the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// Vigil: Celery task events to `POST /api/v1/events` with a producer token.
    Vigil,
    /// The reference servers: `POST /publish` with `[{room, event, data}]`.
    Reference,
    /// Pushpin's HTTP control API: `POST /publish/` with `{items: [{channel, formats:
    /// {http-stream: {content}}}]}`, each content one whole SSE message.
    Pushpin,
}

/// Where events go.
#[derive(Debug, Clone)]
pub struct Sink {
    /// HTTP base of the publish endpoint, e.g. `http://127.0.0.1:3000` (Pushpin: its
    /// control API's).
    pub base: String,
    /// Which contract.
    pub flavor: Flavor,
    /// Room the reference servers emit to.
    pub room: String,
    /// Bearer token for Vigil's ingest.
    pub token: String,
}

/// How publishing went.
#[derive(Debug, Default)]
pub struct Published {
    /// Requests that were not answered 2xx (their events count as lost).
    pub failed_requests: u64,
    /// How long each request took to be answered, in µs, sorted.
    pub answer_us: Vec<u64>,
}

/// Publishes events `0..clock.sent.len()` at `rate` per second, one batch per `tick`.
pub async fn run(sink: Sink, clock: Arc<Clock>, rate: u64, tick: Duration) -> Published {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client with default settings");
    let total = clock.sent.len() as u64;
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::new();
    let mut next = 0;
    let begin = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(tick);
    while next < total {
        ticks.tick().await;
        let due = ((begin.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due <= next {
            continue;
        }
        let ids = next..due;
        next = due;
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let (http, sink, clock) = (http.clone(), sink.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            let body = body(&sink, ids.clone());
            let sent = clock.now_ns() + 1;
            for id in ids {
                clock.sent[id as usize].store(sent, Ordering::Release);
            }
            let ok = post(&http, &sink, body).await;
            drop(permit);
            (ok, (clock.now_ns() + 1 - sent) / 1000)
        }));
    }
    let mut out = Published::default();
    for task in tasks {
        match task.await {
            Ok((true, us)) => out.answer_us.push(us),
            _ => out.failed_requests += 1,
        }
    }
    out.answer_us.sort_unstable();
    out
}

async fn post(http: &reqwest::Client, sink: &Sink, body: Value) -> bool {
    let request = match sink.flavor {
        Flavor::Vigil => http
            .post(format!("{}/api/v1/events", sink.base))
            .bearer_auth(&sink.token),
        Flavor::Reference => http.post(format!("{}/publish", sink.base)),
        Flavor::Pushpin => http.post(format!("{}/publish/", sink.base)),
    };
    match request.json(&body).send().await {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            eprintln!("publish answered {}", r.status());
            false
        }
        Err(e) => {
            eprintln!("publish failed: {e}");
            false
        }
    }
}

/// One request's body for events `ids`.
fn body(sink: &Sink, ids: std::ops::Range<u64>) -> Value {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let items = ids.map(|n| match sink.flavor {
        Flavor::Vigil => json!({
            "type": "task-received", "uuid": id_of(n), "name": "bench.task",
            "routing_key": "default", "timestamp": ts,
        }),
        Flavor::Reference => json!({
            "room": sink.room, "event": "task_update", "data": reference_payload(n, ts),
        }),
        Flavor::Pushpin => {
            let content = format!("event: task_update\ndata: {}\n\n", reference_payload(n, ts));
            json!({ "channel": sink.room, "formats": { "http-stream": { "content": content } } })
        }
    });
    let items = Value::Array(items.collect());
    match sink.flavor {
        Flavor::Pushpin => json!({ "items": items }),
        _ => items,
    }
}

/// What the reference servers emit: the shape and about the size of Vigil's
/// `task_update` payload for the same event, so both put similar bytes on the wire.
fn reference_payload(n: u64, ts: f64) -> Value {
    json!({
        "type": "task_update", "seq": n + 1,
        "data": {
            "id": id_of(n), "name": "bench.task", "state": "RECEIVED", "queue": "default",
            "routing_key": "default", "received_at": ts, "state_at": ts,
            "started_at": null, "finished_at": null, "runtime": null, "worker": null,
            "args": null, "kwargs": null, "result": null, "exception": null,
            "retries": 0, "owner": null, "progress": null,
        },
    })
}
