//! Clients in several processes: a process may hold only so many open files (20 000
//! on the benchmark machine, `ulimit -Hn`, and raising it is refused), so 50 000
//! clients are a fleet split over child processes — this program again, as the hidden
//! `shard` command — while the parent publishes and reports.
//!
//! Each child connects its part of the clients (numbered from `--first`, so targets
//! and source addresses are spread exactly as in one process) and talks to the parent
//! in lines on stdin and stdout:
//!
//! ```text
//! child:  connected <ok> <failed>        once every client subscribed or failed
//! child:  delivered <n>                  every 100 ms: deliveries so far
//! parent: stop <send times, JSON array>  the run is over
//! child:  result <what each client received, JSON array>, then it exits
//! ```
//!
//! The child's clock counts from the parent's start (`--origin-ns`, wall-clock), and
//! since the send times are the parent's, a child keeps each delivery's arrival time
//! until `stop` brings them ([`crate::client::Received::resolve`]).

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::client::{Clock, Received};
use crate::fleet::Fleet;
use crate::net::Sources;
use crate::{CommonArgs, ShardArgs};

/// How often a child reports its deliveries.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// The child processes of one fleet.
pub struct Shards {
    /// Clients that connected and subscribed, over every child.
    pub connected: usize,
    /// Clients that did not.
    pub failed: usize,
    children: Vec<Shard>,
}

struct Shard {
    process: Child,
    stdin: ChildStdin,
    /// The child's latest `delivered` count, kept up to date by a reader task, which
    /// hands back the `result` line at the end.
    delivered: Arc<AtomicU64>,
    result: tokio::task::JoinHandle<anyhow::Result<String>>,
}

impl Shards {
    /// Starts `shards` children with the clients of `args` split between them, and
    /// returns once every child has connected its part.
    pub async fn connect(
        args: &CommonArgs,
        shards: usize,
        events: u64,
        clock: &Clock,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program to start shards")?;
        let mut started = Vec::with_capacity(shards);
        let mut first = 0;
        for k in 0..shards {
            // The first `clients % shards` children take one client more.
            let clients = args.clients / shards + usize::from(k < args.clients % shards);
            let mut process = Command::new(&exe)
                .arg("shard")
                .args(common_args(args, clients))
                .args(["--first", &first.to_string()])
                .args(["--events", &events.to_string()])
                .args(["--origin-ns", &clock.origin_unix_ns.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting a shard")?;
            first += clients;
            let stdin = process.stdin.take().context("shard stdin")?;
            let mut lines = BufReader::new(process.stdout.take().context("shard stdout")?).lines();
            let counts = expect(&mut lines, "connected").await?;
            let (ok, failed) = counts
                .split_once(' ')
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
                .with_context(|| format!("shard said `connected {counts}`"))?;
            let delivered = Arc::new(AtomicU64::new(0));
            let result = tokio::spawn(follow(lines, delivered.clone()));
            started.push((
                ok,
                failed,
                Shard {
                    process,
                    stdin,
                    delivered,
                    result,
                },
            ));
        }
        Ok(Self {
            connected: started.iter().map(|s| s.0).sum(),
            failed: started.iter().map(|s| s.1).sum(),
            children: started.into_iter().map(|s| s.2).collect(),
        })
    }

    /// Deliveries so far, over every child (as of its last report).
    pub fn delivered(&self) -> u64 {
        self.children
            .iter()
            .map(|c| c.delivered.load(Ordering::Relaxed))
            .sum()
    }

    /// Ends the run: every child gets the send times and answers with what its
    /// clients received, in client order.
    pub async fn stop(mut self, sent: &[u64]) -> anyhow::Result<Vec<Received>> {
        let line = format!("stop {}\n", serde_json::to_string(sent)?);
        // Every child disconnects its clients at once, then each is heard in turn.
        for child in &mut self.children {
            child.stdin.write_all(line.as_bytes()).await?;
            child.stdin.flush().await?;
        }
        let mut all = Vec::new();
        for mut child in self.children {
            let result = child.result.await??;
            let received: Vec<Value> = serde_json::from_str(&result)?;
            all.extend(received.iter().map(from_json));
            child.process.wait().await?;
        }
        Ok(all)
    }
}

/// The arguments of `args` a shard needs, with its own number of clients.
fn common_args(args: &CommonArgs, clients: usize) -> Vec<String> {
    let pids: Vec<String> = args.pid.iter().map(u32::to_string).collect();
    let transport = clap::ValueEnum::to_possible_value(&args.transport)
        .expect("every transport has a name")
        .get_name()
        .to_owned();
    [
        ("--url", args.url.join(",")),
        ("--server", args.server.clone()),
        ("--pid", pids.join(",")),
        ("--token", args.token.clone()),
        ("--transport", transport),
        ("--namespace", args.namespace.clone()),
        ("--room", args.room.clone()),
        ("--clients", clients.to_string()),
        ("--sources", args.sources.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect()
}

/// Reads lines until one starting with `word`; returns the rest of it.
async fn expect(lines: &mut Lines<BufReader<ChildStdout>>, word: &str) -> anyhow::Result<String> {
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix(word) {
            return Ok(rest.trim_start().to_owned());
        }
    }
    bail!("a shard ended before saying `{word}` (its errors are above)")
}

/// Keeps `delivered` up to date from the child's reports; returns its result line.
async fn follow(
    mut lines: Lines<BufReader<ChildStdout>>,
    delivered: Arc<AtomicU64>,
) -> anyhow::Result<String> {
    while let Some(line) = lines.next_line().await? {
        if let Some(n) = line.strip_prefix("delivered ") {
            delivered.store(n.parse().unwrap_or(0), Ordering::Relaxed);
        } else if let Some(result) = line.strip_prefix("result ") {
            return Ok(result.to_owned());
        }
    }
    bail!("a shard ended without its result (its errors are above)")
}

/// The child's side: connects its clients, reports, and answers `stop`.
pub async fn serve(args: &ShardArgs) -> anyhow::Result<()> {
    let clock = Arc::new(Clock::shard(args.events, args.origin_ns));
    let common = &args.common;
    let fleet = Fleet::connect(
        &crate::scenario::targets(common),
        args.first,
        common.clients,
        crate::scenario::CONNECT_CONCURRENCY,
        &clock,
        Sources {
            count: common.sources.max(1),
        },
    )
    .await;
    let mut out = tokio::io::stdout();
    let say = |line: String| line + "\n";
    out.write_all(say(format!("connected {} {}", fleet.connected, fleet.failed)).as_bytes())
        .await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut report = tokio::time::interval(REPORT_EVERY);
    let sent: Vec<u64> = loop {
        tokio::select! {
            _ = report.tick() => {
                let n = clock.delivered.load(Ordering::Relaxed);
                out.write_all(say(format!("delivered {n}")).as_bytes()).await?;
                out.flush().await?;
            }
            line = lines.next_line() => match line? {
                Some(line) => if let Some(sent) = line.strip_prefix("stop ") {
                    break serde_json::from_str(sent).context("the send times")?;
                },
                // The parent is gone: nothing to report to.
                None => return Ok(()),
            },
        }
    };
    let mut received = fleet.stop().await;
    for r in &mut received {
        r.resolve(&sent);
    }
    let result: Vec<Value> = received.iter().map(to_json).collect();
    out.write_all(say(format!("result {}", Value::from(result))).as_bytes())
        .await?;
    out.flush().await?;
    Ok(())
}

fn to_json(r: &Received) -> Value {
    json!({
        "latencies_us": r.latencies_us,
        "duplicates": r.duplicates,
        "unknown": r.unknown,
        "last_ns": r.last_ns,
        "ended_early": r.ended_early,
    })
}

fn from_json(v: &Value) -> Received {
    let u64_of = |k: &str| v[k].as_u64().unwrap_or(0);
    Received {
        latencies_us: v["latencies_us"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_u64())
                    .map(|l| l as u32)
                    .collect()
            })
            .unwrap_or_default(),
        duplicates: u64_of("duplicates"),
        unknown: u64_of("unknown"),
        last_ns: u64_of("last_ns"),
        ended_early: v["ended_early"].as_str().map(str::to_owned),
        pending: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_record_crosses_the_pipe_whole() {
        let mut r = Received {
            latencies_us: vec![5],
            duplicates: 1,
            unknown: 2,
            last_ns: 3_000_000_000,
            ended_early: Some("closing: shutdown".into()),
            pending: vec![(0, 2_000_000), (1, 2_500_000), (7, 2_600_000)],
        };
        // Event 0 was sent at 1 ms, event 1 never, event 7 is past the end.
        r.resolve(&[1_000_001, 0]);
        assert_eq!(r.latencies_us, [5, 1000]);
        assert_eq!(r.unknown, 4);
        assert!(r.pending.is_empty());
        let back = from_json(&serde_json::from_str(&to_json(&r).to_string()).unwrap());
        assert_eq!(back.latencies_us, r.latencies_us);
        assert_eq!(
            (back.duplicates, back.unknown, back.last_ns),
            (1, 4, 3_000_000_000)
        );
        assert_eq!(back.ended_early.as_deref(), Some("closing: shutdown"));
    }

    #[test]
    fn a_shard_clock_counts_from_the_parents_start() {
        let parent = Clock::new(1);
        std::thread::sleep(Duration::from_millis(20));
        let child = Clock::shard(1, parent.origin_unix_ns);
        let (p, c) = (parent.now_ns(), child.now_ns());
        assert!(p.abs_diff(c) < 5_000_000, "parent {p} ns, child {c} ns");
        assert!(child.deferred && !parent.deferred);
    }
}
