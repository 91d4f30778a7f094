//! The `longpoll` command: N long-polls held at once, then one ingest that concerns
//! every one of them, and how long after its acknowledgement each answer was read.
//!
//! What it sends mirrors `scripts/bench_longpoll.py`: half the clients wait on the
//! feed (`GET /api/v1/events?since=<head>&timeout=…&topics=celery:tasks`), half on
//! seed 000's job wait (`GET /api/admin/celery/jobs/<id>/wait?timeout=…`) spread over
//! `--jobs` jobs it submits first, all with the admin token, each on its own keep-alive
//! connection ([`client`]), `--connect-rate` new ones a second. Once the server's
//! `/metrics` says all are held (`vigil_long_polls_parked`), one `POST /api/v1/events`
//! with a `task-succeeded` for every job finishes them all: each answer is timed from
//! that request's 202 (*from ack*; negative when the answer came first) and from its
//! sending (*from send*). The server's CPU (its threads' run time, `schedstat`, not
//! `stat`'s 10 ms ticks) is counted from just before that request until the last
//! answer was read, and the driver's own likewise.
//!
//! The floor (`vigil-bench-floor`) takes the same requests with no work per request:
//! `--flavor floor` only skips submitting jobs and reading the head, which it has not.
//!
//! Runs on one thread (`main` gives it a current-thread runtime): one epoll loop reads
//! every answer, so the driver takes less of the shared cores than the server.

mod client;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::net::Sources;
use crate::proc;
use crate::report::{number, text};
use client::{Outcome, Shared};

/// Header of the long-poll table; one row per (clients, server).
pub const HEADER: &str = "| clients | server | held | answered | p50 ms from ack | p99 ms from ack | max ms from ack | p99 ms from send | server CPU ms | CPU µs per answer | driver CPU ms | RSS KiB per long-poll |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

/// How often the driver sends the next few long-polls while connecting.
const PACE: Duration = Duration::from_millis(10);
/// How often `/metrics` is read while waiting for every long-poll to be held.
const POLL: Duration = Duration::from_millis(200);

/// Which server the driver talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// Vigil: jobs are submitted and the feed's head read first.
    Vigil,
    /// The floor: it holds any `GET`, so no jobs and no head.
    Floor,
}

#[derive(clap::Args)]
pub struct Args {
    /// Server HTTP base, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    url: String,
    /// Server name for the table.
    #[arg(long)]
    server: String,
    /// Server process id, for CPU and memory (its descendants are counted too).
    #[arg(long)]
    pid: u32,
    /// What the server is.
    #[arg(long, value_enum, default_value = "vigil")]
    flavor: Flavor,
    /// Admin token: the long-polls, job submission and `/metrics`.
    #[arg(long, default_value = "")]
    token: String,
    /// Producer token: the finishing ingest.
    #[arg(long, default_value = "")]
    producer_token: String,
    /// Long-polls held at once.
    #[arg(long)]
    clients: usize,
    /// Distinct jobs the job waits spread over.
    #[arg(long, default_value_t = 10)]
    jobs: usize,
    /// Each long-poll's `timeout`, seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// New long-polls a second (the host asks its component once per new long-poll,
    /// so a burst of 10 000 at once would measure the connect storm, not the wait).
    #[arg(long, default_value_t = 1000)]
    connect_rate: u64,
    /// Longest wait, seconds, for the long-polls to be held, and again for the answers.
    #[arg(long, default_value_t = 60.0)]
    settle: f64,
    /// Loopback source addresses the clients take turns with (127.0.0.1, .2, …).
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Seconds to wait once all are held before the ingest, saying so on stderr (time
    /// to attach a profiler to the server for the wake-up alone).
    #[arg(long, default_value_t = 0.0)]
    pause_before_ingest: f64,
    /// Appends the JSON record to this file.
    #[arg(long)]
    pub results: Option<String>,
}

/// One run: its JSON record.
pub async fn run(a: &Args) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (ids, since) = seed(&http, a).await?;
    let feed = format!(
        "/api/v1/events?since={since}&timeout={}&topics=celery:tasks",
        a.timeout
    );
    let origin = Instant::now();
    let rss_before = proc::status_kib(a.pid, "VmRSS")?;
    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        server: crate::net::authority(&a.url).to_owned(),
        origin,
        outcomes: outcomes_tx,
        stop: stop_rx,
    });
    let sources = Sources {
        count: a.sources.max(1),
    };
    let per_tick = (a.connect_rate / (1000 / PACE.as_millis() as u64)).max(1) as usize;
    let mut ticks = tokio::time::interval(PACE);
    let mut tasks = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        if i % per_tick == 0 {
            ticks.tick().await;
        }
        let path = if i % 2 == 0 {
            feed.clone()
        } else {
            let id = &ids[i / 2 % ids.len()];
            format!("/api/admin/celery/jobs/{id}/wait?timeout={}", a.timeout)
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {}\r\n\r\n",
            a.token
        );
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            client::run(&shared, sources.of(i), request).await;
        }));
    }
    let mut early = Vec::new();
    let held = settle(&http, a, &mut outcomes, &mut early).await?;
    let rss_held = proc::status_kib(a.pid, "VmRSS")?;
    if a.pause_before_ingest > 0.0 {
        eprintln!(
            "{}: {held} held; ingesting in {} s",
            a.server, a.pause_before_ingest
        );
        tokio::time::sleep(Duration::from_secs_f64(a.pause_before_ingest)).await;
    }
    let cpu_before = proc::thread_run_ns(a.pid)?;
    let driver_before = proc::thread_run_ns(std::process::id())?;
    let (sent_ns, acked_ns) = finish_jobs(&http, a, &ids, origin).await?;
    let mut after = Vec::with_capacity(a.clients);
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(a.settle);
    while early.len() + after.len() < a.clients {
        match tokio::time::timeout_at(deadline, outcomes.recv()).await {
            Ok(Some(o)) => after.push(o),
            Ok(None) | Err(_) => break,
        }
    }
    let cpu_ms = proc::run_seconds_between(&cpu_before, &proc::thread_run_ns(a.pid)?) * 1000.0;
    let driver_after = proc::thread_run_ns(std::process::id())?;
    let driver_cpu_ms = proc::run_seconds_between(&driver_before, &driver_after) * 1000.0;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    warn_about(a, &early, &after);
    let counts = Counts {
        held,
        refused: early
            .iter()
            .chain(&after)
            .filter(|o| o.status == 503)
            .count(),
        per_long_poll_kib: rss_held.saturating_sub(rss_before) as f64 / held.max(1) as f64,
        cpu_ms,
        driver_cpu_ms,
    };
    Ok(record(a, &counts, &after, sent_ns, acked_ns))
}

/// Submits the jobs and reads the feed's head (Vigil), or makes up job ids (floor).
async fn seed(http: &reqwest::Client, a: &Args) -> anyhow::Result<(Vec<String>, u64)> {
    let jobs = a.jobs.max(1);
    if a.flavor == Flavor::Floor {
        return Ok(((0..jobs).map(|i| format!("floor-job-{i}")).collect(), 0));
    }
    let mut ids = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let job: Value = http
            .post(format!("{}/api/admin/celery/jobs/bench.job", a.url))
            .bearer_auth(&a.token)
            .json(&json!({}))
            .send()
            .await?
            .error_for_status()
            .context("submitting a job")?
            .json()
            .await?;
        let id = job["job_id"].as_str().context("a job without job_id")?;
        ids.push(id.to_owned());
    }
    let head: Value = http
        .get(format!("{}/api/v1/events?timeout=0", a.url))
        .bearer_auth(&a.token)
        .send()
        .await?
        .error_for_status()
        .context("reading the feed's head")?
        .json()
        .await?;
    let since = head["seq"].as_u64().context("a feed page without seq")?;
    Ok((ids, since))
}

/// Waits until every client is held by the server or has had an answer already
/// (collected into `early`); how many are held.
async fn settle(
    http: &reqwest::Client,
    a: &Args,
    outcomes: &mut mpsc::UnboundedReceiver<Outcome>,
    early: &mut Vec<Outcome>,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs_f64(a.settle);
    loop {
        while let Ok(o) = outcomes.try_recv() {
            early.push(o);
        }
        let held = parked(http, a).await?;
        if held + early.len() >= a.clients || Instant::now() > deadline {
            return Ok(held);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The server's `vigil_long_polls_parked` gauge.
async fn parked(http: &reqwest::Client, a: &Args) -> anyhow::Result<usize> {
    let text = http
        .get(format!("{}/metrics", a.url))
        .bearer_auth(&a.token)
        .send()
        .await?
        .error_for_status()
        .context("reading /metrics")?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("vigil_long_polls_parked "))
        .and_then(|v| v.trim().parse().ok())
        .context("the server's /metrics has no vigil_long_polls_parked")
}

/// Ingests one `task-succeeded` per job; when the request was sent and when its 202
/// was read, ns since `origin`.
async fn finish_jobs(
    http: &reqwest::Client,
    a: &Args,
    ids: &[String],
    origin: Instant,
) -> anyhow::Result<(u64, u64)> {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "type": "task-succeeded", "uuid": id, "result": "1" }))
        .collect();
    let request = http
        .post(format!("{}/api/v1/events", a.url))
        .bearer_auth(&a.producer_token)
        .json(&events);
    let sent = origin.elapsed().as_nanos() as u64;
    let answer = request
        .send()
        .await
        .context("ingesting the finishing batch")?;
    let acked = origin.elapsed().as_nanos() as u64;
    if answer.status().as_u16() != 202 {
        bail!("the finishing batch was answered {}", answer.status());
    }
    Ok((sent, acked))
}

fn warn_about(a: &Args, early: &[Outcome], after: &[Outcome]) {
    let unanswered = a.clients - early.len() - after.len();
    let errors: Vec<&Outcome> = early.iter().chain(after).filter(|o| !o.answered).collect();
    if let Some(first) = errors.first() {
        eprintln!(
            "{}: {} long-polls ended without the answer ({} before the ingest), e.g. status {} {}",
            a.server,
            errors.len(),
            early.len(),
            first.status,
            first.error.as_deref().unwrap_or("")
        );
    }
    if unanswered > 0 {
        eprintln!(
            "{}: {unanswered} long-polls had no answer {} s after the ingest",
            a.server, a.settle
        );
    }
}

/// What a run counted besides the answers' times.
struct Counts {
    held: usize,
    refused: usize,
    per_long_poll_kib: f64,
    cpu_ms: f64,
    /// The driver's own CPU over the same span: reading the answers costs it too.
    driver_cpu_ms: f64,
}

/// The JSON record of a run whose answers after the ingest are `after`.
fn record(a: &Args, c: &Counts, after: &[Outcome], sent_ns: u64, acked_ns: u64) -> Value {
    let answered: Vec<&Outcome> = after.iter().filter(|o| o.answered).collect();
    let since = |from: u64| {
        let mut us: Vec<i64> = answered
            .iter()
            .map(|o| (o.at_ns as i64 - from as i64) / 1000)
            .collect();
        us.sort_unstable();
        us
    };
    let (from_ack, from_send) = (since(acked_ns), since(sent_ns));
    let n = answered.len();
    json!({
        "kind": "longpoll",
        "server": a.server,
        "clients": a.clients,
        "held": c.held,
        "refused": c.refused,
        "answered": n,
        "p50_ms": percentile(&from_ack, 0.5),
        "p99_ms": percentile(&from_ack, 0.99),
        "max_ms": percentile(&from_ack, 1.0),
        "p99_from_send_ms": percentile(&from_send, 0.99),
        "ack_ms": (acked_ns - sent_ns) as f64 / 1e6,
        "cpu_ms": c.cpu_ms.round(),
        "cpu_us_per_answer": (n > 0).then(|| (c.cpu_ms * 1000.0 / n as f64).round()),
        "driver_cpu_ms": c.driver_cpu_ms.round(),
        "rss_kib_per_long_poll": (c.per_long_poll_kib * 10.0).round() / 10.0,
    })
}

/// The `p` quantile of sorted µs, in ms.
fn percentile(sorted_us: &[i64], p: f64) -> Value {
    match sorted_us.len() {
        0 => Value::Null,
        n => json!(sorted_us[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0),
    }
}

/// The markdown row of a long-poll record.
pub fn row(r: &Value) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        r["clients"],
        text(&r["server"]),
        r["held"],
        r["answered"],
        number(&r["p50_ms"], 1),
        number(&r["p99_ms"], 1),
        number(&r["max_ms"], 1),
        number(&r["p99_from_send_ms"], 1),
        number(&r["cpu_ms"], 0),
        number(&r["cpu_us_per_answer"], 0),
        number(&r["driver_cpu_ms"], 0),
        number(&r["rss_kib_per_long_poll"], 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(at_ms: u64) -> Outcome {
        Outcome {
            status: 200,
            answered: true,
            at_ns: at_ms * 1_000_000,
            error: None,
        }
    }

    #[test]
    fn answers_are_timed_from_the_ack_and_may_precede_it() {
        let args = Args {
            url: String::new(),
            server: "floor".into(),
            pid: 0,
            flavor: Flavor::Floor,
            token: String::new(),
            producer_token: String::new(),
            clients: 4,
            jobs: 10,
            timeout: 120,
            connect_rate: 1000,
            settle: 60.0,
            sources: 1,
            pause_before_ingest: 0.0,
            results: None,
        };
        let counts = Counts {
            held: 4,
            refused: 0,
            per_long_poll_kib: 5.0,
            cpu_ms: 20.0,
            driver_cpu_ms: 10.0,
        };
        let late = Outcome {
            answered: false,
            ..answer(500)
        };
        let outcomes = [answer(99), answer(104), answer(110), late];
        let r = record(&args, &counts, &outcomes, 95_000_000, 100_000_000);
        assert_eq!(r["answered"], 3);
        assert_eq!(
            row(&r),
            "| 4 | floor | 4 | 3 | 4.0 | 10.0 | 10.0 | 15.0 | 20 | 6667 | 10 | 5.0 |"
        );
        assert_eq!(r["ack_ms"], 5.0);
        let first = percentile(&[-1000, 2000], 0.0);
        assert_eq!(first, json!(-1.0));
    }
}
