//! `vigil-loadgen`: the load generator behind `scripts/bench`, for Socket.IO, SSE and
//! the native WebSocket alike.
//!
//! - `run`: K clients subscribe to a room, M events are published at rate R through
//!   the server's ingest endpoint, and one markdown row reports delivered/expected,
//!   publish→receive latency (same process, monotonic clock), deliveries per second,
//!   and the server's CPU seconds and peak RSS.
//! - `idle`: N clients connect and subscribe; the server's RSS growth per connection.
//! - `ingest`: producers post batches as fast as they are acknowledged; events/s.
//! - `longpoll`: N long-polls held, one ingest concerning all; each answer's time from
//!   its acknowledgement, and the server's CPU per answer.
//! - `tables`: the README tables from a results file.
//!
//! `run` and `idle` also append their JSON records to `--results`. Several `--url`s
//! (and `--pid`s) make one deployment of several hosts: clients are spread over them,
//! events published to the first, and a second row gives the clients on the other
//! hosts alone (cross-host delivery).
//!
//! Modules: [`client`] (one client per transport), [`eio`] (Socket.IO's wire
//! protocol), [`ids`] (event ids), [`net`] (TCP from several source addresses),
//! [`fleet`] (many clients), [`publish`] (the publisher), [`scenario`] (`run` and
//! `idle`), [`ingest`] (ingest throughput), [`proc`] (`/proc` readings), [`report`]
//! (rows and records), [`results`] (files and tables), [`shard`] (clients in child
//! processes, past one process's open-file limit), [`longpoll`] (long-polls).

mod client;
mod eio;
mod fleet;
mod ids;
mod ingest;
mod longpoll;
mod net;
mod proc;
mod publish;
mod report;
mod results;
mod scenario;
mod shard;

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::Value;

use client::Transport;
use publish::Flavor;

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
    /// Ingest throughput; prints one markdown row of the ingest table.
    Ingest(IngestArgs),
    /// One child process's share of the clients (started by `--shards`; see `shard`).
    #[command(hide = true)]
    Shard(ShardArgs),
    /// Long-polls held, then woken by one ingest; prints one markdown row of the
    /// long-poll table.
    Longpoll(longpoll::Args),
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
    Ingest,
    Longpoll,
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
pub(crate) struct CommonArgs {
    /// Server HTTP base, e.g. http://127.0.0.1:3000; comma-separated for several hosts
    /// of one deployment: clients are spread over them, events published to the first.
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Server name for the table.
    #[arg(long)]
    server: String,
    /// Server process id, for CPU and memory (its descendants are counted too);
    /// comma-separated for a deployment of several processes (hosts, Redis): CPU and
    /// peak RSS are their sums.
    #[arg(long, value_delimiter = ',', required = true)]
    pid: Vec<u32>,
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
    /// Child processes the clients are split over: a process can hold only so many
    /// open files (`ulimit -Hn`), 50 000 clients need several.
    #[arg(long, default_value_t = 1)]
    shards: usize,
}

#[derive(clap::Args)]
pub(crate) struct ShardArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Number of this shard's first client in the whole fleet.
    #[arg(long)]
    first: usize,
    /// Events the run publishes.
    #[arg(long)]
    events: u64,
    /// The parent's clock start, ns since the Unix epoch.
    #[arg(long)]
    origin_ns: u64,
}

#[derive(clap::Args)]
pub(crate) struct RunArgs {
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

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    // The long-poll driver shares the machine's cores with the server it measures:
    // one thread's epoll loop reads every answer. The push clients use every core.
    let runtime = match command {
        Command::Longpoll(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(execute(command))
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            for record in scenario::run(&args).await? {
                keep(&args.common, &record)?;
                println!("{}", report::load_row(&record));
            }
        }
        Command::Idle(args) => {
            let record = scenario::idle(&args).await?;
            keep(&args, &record)?;
            println!("{}", report::idle_row(&record));
        }
        Command::Shard(args) => shard::serve(&args).await?,
        Command::Ingest(a) => {
            let row = ingest::run(
                &a.server,
                &a.url,
                &a.producer_token,
                a.concurrency,
                a.batch,
                a.seconds,
            );
            println!("{}", row.await);
        }
        Command::Longpoll(args) => {
            let record = longpoll::run(&args).await?;
            append(args.results.as_deref(), &record)?;
            println!("{}", longpoll::row(&record));
        }
        Command::Header { table: Table::Load } => println!("{}", report::LOAD_HEADER),
        Command::Header { table: Table::Idle } => println!("{}", report::IDLE_HEADER),
        Command::Header {
            table: Table::Ingest,
        } => println!("{}", ingest::HEADER),
        Command::Header {
            table: Table::Longpoll,
        } => println!("{}", longpoll::HEADER),
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
    append(args.results.as_deref(), record)
}

/// Appends `record` to the results file at `path`, if there is one.
fn append(path: Option<&str>, record: &Value) -> anyhow::Result<()> {
    let Some(path) = path else {
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
