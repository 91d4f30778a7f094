//! The `run` and `idle` commands: a fleet of clients, the publisher, and the server's
//! CPU and memory around them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::client::Received;
use crate::client::{Clock, Target};
use crate::fleet::Fleet;
use crate::net::Sources;
use crate::publish::{self, Sink};
use crate::shard::Shards;
use crate::{proc, report, CommonArgs, RunArgs};

/// Handshakes in flight at once while connecting clients (per process).
pub const CONNECT_CONCURRENCY: usize = 100;
/// Pause between the last subscribe and the first publish, so connection set-up work
/// is not counted in the scenario's CPU seconds.
const SETTLE: Duration = Duration::from_millis(500);
/// Pause between connecting idle clients and reading the server's memory, so
/// connection set-up garbage is collected (Node, Python) first.
const IDLE_SETTLE: Duration = Duration::from_secs(3);

/// One target per host.
pub fn targets(args: &CommonArgs) -> Vec<Target> {
    args.url
        .iter()
        .map(|url| Target {
            transport: args.transport,
            base: url.clone(),
            namespace: args.namespace.clone(),
            room: args.room.clone(),
            token: args.token.clone(),
        })
        .collect()
}

/// CPU seconds of every process of the deployment (each with its descendants).
fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|&p| proc::cpu_seconds(p)).sum()
}

/// A memory line summed over every process of the deployment.
fn status_kib(pids: &[u32], field: &str) -> anyhow::Result<u64> {
    pids.iter().map(|&p| proc::status_kib(p, field)).sum()
}

/// The clients of a run: in this process, or split over `--shards` child processes.
enum Clients {
    Here(Fleet),
    Shards(Shards),
}

impl Clients {
    async fn connect(args: &CommonArgs, clock: &Arc<Clock>) -> anyhow::Result<Self> {
        let clients = if args.shards > 1 {
            let events = clock.sent.len() as u64;
            Self::Shards(Shards::connect(args, args.shards, events, clock).await?)
        } else {
            let sources = Sources {
                count: args.sources.max(1),
            };
            let targets = targets(args);
            let fleet = Fleet::connect(
                &targets,
                0,
                args.clients,
                CONNECT_CONCURRENCY,
                clock,
                sources,
            );
            Self::Here(fleet.await)
        };
        let (connected, failed) = clients.counts();
        eprintln!(
            "{} ({}): {connected} clients connected, {failed} failed",
            args.server,
            args.transport.name(),
        );
        Ok(clients)
    }

    fn counts(&self) -> (usize, usize) {
        match self {
            Self::Here(f) => (f.connected, f.failed),
            Self::Shards(s) => (s.connected, s.failed),
        }
    }

    fn delivered(&self, clock: &Clock) -> u64 {
        match self {
            Self::Here(_) => clock.delivered.load(Ordering::Relaxed),
            Self::Shards(s) => s.delivered(),
        }
    }

    /// Disconnects every client; what each received, in client order.
    async fn stop(self, clock: &Clock) -> anyhow::Result<Vec<Received>> {
        match self {
            Self::Here(f) => Ok(f.stop().await),
            Self::Shards(s) => s.stop(&clock.sent_times()).await,
        }
    }
}

/// One scenario: its record, and with several hosts a second one for the clients on
/// the other hosts alone.
pub async fn run(args: &RunArgs) -> anyhow::Result<Vec<Value>> {
    let c = &args.common;
    let events = (args.rate as f64 * args.seconds).round() as u64;
    let clock = Arc::new(Clock::new(events));
    let clients = Clients::connect(c, &clock).await?;
    tokio::time::sleep(SETTLE).await;
    let cpu_before = cpu_seconds(&c.pid)?;
    let first_ns = clock.now_ns();
    let sink = Sink {
        base: args.publish_url.clone().unwrap_or_else(|| c.url[0].clone()),
        flavor: args.flavor,
        room: c.room.clone(),
        token: args.producer_token.clone(),
    };
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let published = publish::run(sink, clock.clone(), args.rate, tick).await;
    report_publishing(&c.server, &published);
    let expected = clients.counts().0 as u64 * events;
    let drain_until = tokio::time::Instant::now() + Duration::from_secs_f64(args.drain);
    while clients.delivered(&clock) < expected && tokio::time::Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_s = cpu_seconds(&c.pid)? - cpu_before;
    let peak_kib = status_kib(&c.pid, "VmHWM")?;
    let received = clients.stop(&clock).await?;
    let (duplicates, unknown) = report::anomalies(&received);
    if published.failed_requests + duplicates + unknown > 0 {
        eprintln!(
            "{}: {} publish requests failed, {duplicates} duplicate and {unknown} unknown deliveries",
            c.server, published.failed_requests
        );
    }
    if let (n @ 1.., Some(why)) = report::ended_early(&received) {
        eprintln!(
            "{}: the server disconnected {n} clients early, e.g. {why}",
            c.server
        );
    }
    let row = report::LoadRow {
        transport: c.transport,
        clients: c.clients,
        rate: args.rate,
        server: c.server.clone(),
        expected: c.clients as u64 * events,
        cpu_s: Some(cpu_s),
        peak_kib,
        span_s: report::last_delivery_ns(&received).saturating_sub(first_ns) as f64 / 1e9,
    };
    let mut records = vec![row.record(&received)];
    let hosts = c.url.len();
    if hosts > 1 {
        // Client i is on host i % hosts; events were published to host 0.
        let cross: Vec<_> = received
            .iter()
            .enumerate()
            .filter(|(i, _)| i % hosts != 0)
            .map(|(_, r)| r.clone())
            .collect();
        let cross_row = report::LoadRow {
            server: format!("{}: clients on other hosts", c.server),
            expected: cross.len() as u64 * events,
            cpu_s: None,
            ..row
        };
        records.push(cross_row.record(&cross));
    }
    Ok(records)
}

fn report_publishing(server: &str, published: &publish::Published) {
    if let (Some(&max), n @ 1..) = (published.answer_us.last(), published.answer_us.len()) {
        let p99 = published.answer_us[(n * 99 / 100).min(n - 1)];
        let ms = |us: u64| us as f64 / 1000.0;
        eprintln!(
            "{server}: {n} publish requests answered in p99 {:.1} ms, max {:.1} ms",
            ms(p99),
            ms(max)
        );
    }
}

/// Idle memory: the record.
pub async fn idle(args: &CommonArgs) -> anyhow::Result<Value> {
    let clock = Arc::new(Clock::new(0));
    let before = status_kib(&args.pid, "VmRSS")?;
    let clients = Clients::connect(args, &clock).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let after = status_kib(&args.pid, "VmRSS")?;
    let connected = clients.counts().0;
    clients.stop(&clock).await?;
    Ok(report::idle_record(
        args.transport,
        &args.server,
        connected,
        before,
        after,
    ))
}
