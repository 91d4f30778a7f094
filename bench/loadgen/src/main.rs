//! `vigil-loadgen`: the Socket.IO load generator behind `scripts/bench`.
//!
//! - `run`: K WebSocket clients subscribe to a room, M events are published at rate R
//!   through the server's ingest endpoint, and one markdown row reports
//!   delivered/expected, publish→receive latency (same process, monotonic clock),
//!   deliveries per second, and the server's CPU seconds and peak RSS.
//! - `idle`: N clients connect and subscribe; the server's RSS growth per connection.
//! - `ingest`: producers post batches as fast as they are acknowledged; events/s.
//!
//! Several `--url`s (and `--pid`s) make one deployment of several hosts: clients are
//! spread over them, events published to the first, and a second row gives the clients
//! on the other hosts alone (cross-host delivery).
//!
//! Modules: [`eio`] (the wire protocol), [`client`] (one client), [`fleet`] (many),
//! [`publish`] (the publisher), [`proc`] (`/proc` readings), [`report`] (the rows).

mod client;
mod eio;
mod fleet;
mod ingest;
mod proc;
mod publish;
mod report;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use client::{Clock, Target};
use fleet::Fleet;
use publish::{Flavor, Sink};

/// Handshakes in flight at once while connecting clients.
const CONNECT_CONCURRENCY: usize = 100;
/// Pause between the last subscribe and the first publish, so connection set-up work
/// is not counted in the scenario's CPU seconds.
const SETTLE: Duration = Duration::from_millis(500);

#[derive(Parser)]
#[command(
    name = "vigil-loadgen",
    about = "Socket.IO load generator for scripts/bench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One load scenario; prints one markdown row of the load table.
    Run(RunArgs),
    /// Idle connection memory; prints one markdown row of the idle table.
    Idle(CommonArgs),
    /// Ingest throughput; prints one markdown row of the ingest table.
    Ingest(IngestArgs),
    /// Prints a table's header.
    Header {
        /// Which table.
        #[arg(value_enum)]
        table: Table,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Table {
    Load,
    Idle,
    Ingest,
}

#[derive(clap::Args)]
struct IngestArgs {
    /// Server HTTP base.
    #[arg(long)]
    url: String,
    /// Name for the table (e.g. `vigil (SQLite)`).
    #[arg(long)]
    server: String,
    /// Producer token.
    #[arg(long)]
    producer_token: String,
    /// Producers posting at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Events per request.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Seconds of posting.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

#[derive(clap::Args)]
struct CommonArgs {
    /// Server HTTP base, e.g. http://127.0.0.1:3000; comma-separated for several hosts
    /// of one deployment: clients are spread over them, events published to the first.
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Server name for the table.
    #[arg(long)]
    server: String,
    /// Server process id, for CPU and memory; comma-separated for a deployment of
    /// several processes (hosts, Redis): CPU and peak RSS are their sums.
    #[arg(long, value_delimiter = ',', required = true)]
    pid: Vec<u32>,
    /// JWT the clients connect with (`auth.token`).
    #[arg(long)]
    token: String,
    /// Socket.IO namespace.
    #[arg(long, default_value = "/")]
    namespace: String,
    /// Room the clients subscribe to and events are published to.
    #[arg(long, default_value = "celery:tasks")]
    room: String,
    /// Number of clients.
    #[arg(long)]
    clients: usize,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Ingest contract.
    #[arg(long, value_enum)]
    flavor: Flavor,
    /// Bearer token for Vigil's ingest.
    #[arg(long, default_value = "")]
    producer_token: String,
    /// Events per second.
    #[arg(long)]
    rate: u64,
    /// Seconds of publishing (events = rate × seconds).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Longest wait for the last deliveries after publishing ends.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Publishing tick in ms (one request per tick).
    #[arg(long, default_value_t = 20)]
    tick_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => println!("{}", run(args).await?),
        Command::Idle(args) => println!("{}", idle(args).await?),
        Command::Ingest(a) => println!(
            "{}",
            ingest::run(
                &a.server,
                &a.url,
                &a.producer_token,
                a.concurrency,
                a.batch,
                a.seconds
            )
            .await
        ),
        Command::Header { table: Table::Load } => println!("{}", report::LOAD_HEADER),
        Command::Header { table: Table::Idle } => println!("{}", report::IDLE_HEADER),
        Command::Header {
            table: Table::Ingest,
        } => println!("{}", ingest::HEADER),
    }
    Ok(())
}

/// One target per host.
fn targets(args: &CommonArgs) -> Vec<Target> {
    args.url
        .iter()
        .map(|url| Target {
            url: format!(
                "{}/socket.io/?EIO=4&transport=websocket",
                url.replacen("http", "ws", 1)
            ),
            namespace: args.namespace.clone(),
            room: args.room.clone(),
            token: args.token.clone(),
        })
        .collect()
}

/// CPU seconds of every process of the deployment.
fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|&p| proc::cpu_seconds(p)).sum()
}

/// A memory line summed over every process of the deployment.
fn status_kib(pids: &[u32], field: &str) -> anyhow::Result<u64> {
    pids.iter().map(|&p| proc::status_kib(p, field)).sum()
}

async fn run(args: RunArgs) -> anyhow::Result<String> {
    let c = &args.common;
    let events = (args.rate as f64 * args.seconds).round() as u64;
    let clock = Arc::new(Clock::new(events));
    let fleet = Fleet::connect(&targets(c), c.clients, CONNECT_CONCURRENCY, &clock).await;
    eprintln!(
        "{}: {} clients connected, {} failed",
        c.server, fleet.connected, fleet.failed
    );
    tokio::time::sleep(SETTLE).await;
    let cpu_before = cpu_seconds(&c.pid)?;
    let first_ns = clock.now_ns();
    let sink = Sink {
        base: c.url[0].clone(),
        flavor: args.flavor,
        room: c.room.clone(),
        token: args.producer_token.clone(),
    };
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let published = publish::run(sink, clock.clone(), args.rate, tick).await;
    if let (Some(&max), n @ 1..) = (published.answer_us.last(), published.answer_us.len()) {
        let p99 = published.answer_us[(n * 99 / 100).min(n - 1)];
        let ms = |us: u64| us as f64 / 1000.0;
        eprintln!(
            "{}: {n} publish requests answered in p99 {:.1} ms, max {:.1} ms",
            c.server,
            ms(p99),
            ms(max)
        );
    }
    let expected = fleet.connected as u64 * events;
    let drain_until = tokio::time::Instant::now() + Duration::from_secs_f64(args.drain);
    while clock.delivered.load(Ordering::Relaxed) < expected
        && tokio::time::Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_s = cpu_seconds(&c.pid)? - cpu_before;
    let peak_kib = status_kib(&c.pid, "VmHWM")?;
    let received = fleet.stop().await;
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
        scenario: format!("{} × {}/s", c.clients, args.rate),
        server: c.server.clone(),
        expected: c.clients as u64 * events,
        cpu_s: Some(cpu_s),
        peak_kib,
        span_s: report::last_delivery_ns(&received).saturating_sub(first_ns) as f64 / 1e9,
    };
    let hosts = c.url.len();
    let all = row.render(&received);
    if hosts == 1 {
        return Ok(all);
    }
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
    Ok(format!("{all}\n{}", cross_row.render(&cross)))
}

async fn idle(args: CommonArgs) -> anyhow::Result<String> {
    let clock = Arc::new(Clock::new(0));
    let before = status_kib(&args.pid, "VmRSS")?;
    let fleet = Fleet::connect(&targets(&args), args.clients, CONNECT_CONCURRENCY, &clock).await;
    // Let connection set-up garbage be collected (Node, Python) before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = status_kib(&args.pid, "VmRSS")?;
    if fleet.failed > 0 {
        eprintln!(
            "{}: {} idle clients failed to connect",
            args.server, fleet.failed
        );
    }
    let connected = fleet.connected;
    fleet.stop().await;
    Ok(report::idle_row(&args.server, connected, before, after))
}
