//! `vigil-loadgen`: the load generator behind `scripts/bench`, for Socket.IO, SSE and
//! the native WebSocket alike.
//!
//! - `run`: K clients subscribe to a room, M events are published at rate R through
//!   the server's ingest endpoint, and one markdown row reports delivered/expected,
//!   publish→receive latency (same process, monotonic clock), deliveries per second,
//!   and the server's CPU seconds and peak RSS.
//! - `idle`: N clients connect and subscribe; the server's RSS growth per connection.
//! - `tables`: the README tables from a results file.
//!
//! `run` and `idle` also append their JSON record to `--results`.
//!
//! Modules: [`client`] (one client per transport), [`eio`] (Socket.IO's wire
//! protocol), [`ids`] (event ids), [`net`] (TCP from several source addresses),
//! [`fleet`] (many clients), [`publish`] (the publisher), [`proc`] (`/proc`
//! readings), [`report`] (rows and records), [`results`] (files and tables).

mod client;
mod eio;
mod fleet;
mod ids;
mod net;
mod proc;
mod publish;
mod report;
mod results;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::Value;

use client::{Clock, Target, Transport};
use fleet::Fleet;
use net::Sources;
use publish::{Flavor, Sink};

/// Handshakes in flight at once while connecting clients.
const CONNECT_CONCURRENCY: usize = 100;
/// Pause between the last subscribe and the first publish, so connection set-up work
/// is not counted in the scenario's CPU seconds.
const SETTLE: Duration = Duration::from_millis(500);
/// Pause between connecting idle clients and reading the server's memory, so
/// connection set-up garbage is collected (Node, Python) first.
const IDLE_SETTLE: Duration = Duration::from_secs(3);

#[derive(Parser)]
#[command(
    name = "vigil-loadgen",
    about = "Push load generator for scripts/bench"
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
    /// Prints a table's header.
    Header {
        /// Which table.
        #[arg(value_enum)]
        table: Table,
    },
    /// Prints the README tables of a results file, or puts them in the README.
    Tables {
        /// The results file (JSON lines).
        file: String,
        /// Replace the tables between this README's markers instead of printing.
        #[arg(long)]
        readme: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Table {
    Load,
    Idle,
}

#[derive(clap::Args)]
struct CommonArgs {
    /// Server HTTP base, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    url: String,
    /// Server name for the table.
    #[arg(long)]
    server: String,
    /// Server process id, for CPU and memory (its descendants are counted too).
    #[arg(long)]
    pid: u32,
    /// JWT the clients connect with.
    #[arg(long)]
    token: String,
    /// Transport the clients speak.
    #[arg(long, value_enum, default_value = "socketio")]
    transport: Transport,
    /// Socket.IO namespace.
    #[arg(long, default_value = "/")]
    namespace: String,
    /// Room the clients subscribe to and events are published to.
    #[arg(long, default_value = "celery:tasks")]
    room: String,
    /// Number of clients.
    #[arg(long)]
    clients: usize,
    /// Loopback source addresses the clients take turns with (127.0.0.1, .2, …); one
    /// address has ports for about 28 000 connections.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Appends the JSON record to this file.
    #[arg(long)]
    results: Option<String>,
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
    /// Base URL of the publish endpoint when it is not the server's (Pushpin's control API).
    #[arg(long)]
    publish_url: Option<String>,
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
        Command::Run(args) => {
            let record = run(&args).await?;
            keep(&args.common, &record)?;
            println!("{}", report::load_row(&record));
        }
        Command::Idle(args) => {
            let record = idle(&args).await?;
            keep(&args, &record)?;
            println!("{}", report::idle_row(&record));
        }
        Command::Header { table: Table::Load } => println!("{}", report::LOAD_HEADER),
        Command::Header { table: Table::Idle } => println!("{}", report::IDLE_HEADER),
        Command::Tables { file, readme } => {
            let tables = results::tables(&results::read(&file)?);
            match readme {
                None => print!("{tables}"),
                Some(path) => {
                    let text = std::fs::read_to_string(&path)?;
                    std::fs::write(&path, results::splice(&text, &tables)?)?;
                    eprintln!("{path}: tables from {file}");
                }
            }
        }
    }
    Ok(())
}

/// Appends `record` to the results file, if one was named.
fn keep(args: &CommonArgs, record: &Value) -> anyhow::Result<()> {
    let Some(path) = &args.results else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    writeln!(file, "{record}")?;
    Ok(())
}

fn target(args: &CommonArgs) -> Target {
    Target {
        transport: args.transport,
        base: args.url.clone(),
        namespace: args.namespace.clone(),
        room: args.room.clone(),
        token: args.token.clone(),
    }
}

async fn connect(args: &CommonArgs, clock: &Arc<Clock>) -> Fleet {
    let sources = Sources {
        count: args.sources.max(1),
    };
    let fleet = Fleet::connect(
        &target(args),
        args.clients,
        CONNECT_CONCURRENCY,
        clock,
        sources,
    )
    .await;
    eprintln!(
        "{} ({}): {} clients connected, {} failed",
        args.server,
        args.transport.name(),
        fleet.connected,
        fleet.failed
    );
    fleet
}

async fn run(args: &RunArgs) -> anyhow::Result<Value> {
    let c = &args.common;
    let events = (args.rate as f64 * args.seconds).round() as u64;
    let clock = Arc::new(Clock::new(events));
    let fleet = connect(c, &clock).await;
    tokio::time::sleep(SETTLE).await;
    let cpu_before = proc::cpu_seconds(c.pid)?;
    let first_ns = clock.now_ns();
    let sink = Sink {
        base: args.publish_url.clone().unwrap_or_else(|| c.url.clone()),
        flavor: args.flavor,
        room: c.room.clone(),
        token: args.producer_token.clone(),
    };
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let published = publish::run(sink, clock.clone(), args.rate, tick).await;
    report_publishing(&c.server, &published);
    let expected = fleet.connected as u64 * events;
    let drain_until = tokio::time::Instant::now() + Duration::from_secs_f64(args.drain);
    while clock.delivered.load(Ordering::Relaxed) < expected
        && tokio::time::Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_s = proc::cpu_seconds(c.pid)? - cpu_before;
    let peak_kib = proc::status_kib(c.pid, "VmHWM")?;
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
        transport: c.transport,
        clients: c.clients,
        rate: args.rate,
        server: c.server.clone(),
        expected: c.clients as u64 * events,
        cpu_s,
        peak_kib,
        span_s: report::last_delivery_ns(&received).saturating_sub(first_ns) as f64 / 1e9,
    };
    Ok(row.record(&received))
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

async fn idle(args: &CommonArgs) -> anyhow::Result<Value> {
    let clock = Arc::new(Clock::new(0));
    let before = proc::status_kib(args.pid, "VmRSS")?;
    let fleet = connect(args, &clock).await;
    tokio::time::sleep(IDLE_SETTLE).await;
    let after = proc::status_kib(args.pid, "VmRSS")?;
    let connected = fleet.connected;
    fleet.stop().await;
    Ok(report::idle_record(
        args.transport,
        &args.server,
        connected,
        before,
        after,
    ))
}
