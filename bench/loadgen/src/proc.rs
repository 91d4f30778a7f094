//! The server's CPU time and memory, from `/proc`. A server may be several processes
//! (Pushpin runs a connection manager, a proxy and a handler under one runner): every
//! reading is summed over the process and all its descendants.

use std::collections::HashMap;

use anyhow::Context;

/// User + system CPU seconds the server's processes have used, all threads.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let mut ticks = 0;
    for p in tree(pid)? {
        // A process may end between listing and reading; it has nothing left to count.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // After the parenthesised command name: utime is field 14, stime 15.
            let fields = stat_fields(&stat);
            ticks += field(&fields, 11) + field(&fields, 12);
        }
    }
    Ok(ticks as f64 / clock_ticks() as f64)
}

/// Nanoseconds each thread of process `pid` has run so far, by thread id
/// (`/proc/<pid>/task/<tid>/schedstat`): finer than `stat`'s 10 ms ticks, for spans
/// that cost a server tens of milliseconds. Descendant processes are not counted.
pub fn thread_run_ns(pid: u32) -> anyhow::Result<HashMap<u32, u64>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(&dir)
        .with_context(|| format!("reading {dir}"))?
        .flatten()
    {
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A thread may end between listing and reading.
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("schedstat")) {
            let ns = stat.split_whitespace().next().and_then(|f| f.parse().ok());
            out.insert(tid, ns.unwrap_or(0));
        }
    }
    Ok(out)
}

/// CPU seconds a process's threads ran between two [`thread_run_ns`] readings; a
/// thread that ended in between is not counted (tokio's workers live as long as the
/// server).
pub fn run_seconds_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> f64 {
    let ns: u64 = after
        .iter()
        .map(|(tid, &ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    ns as f64 / 1e9
}

/// A `/proc/<pid>/status` memory line (`VmRSS`, `VmHWM`) in KiB, summed over the tree.
pub fn status_kib(pid: u32, name: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for p in tree(pid)? {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        total += status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{p}/status"))?;
    }
    Ok(total)
}

/// `pid` and every process descended from it.
fn tree(pid: u32) -> anyhow::Result<Vec<u32>> {
    std::fs::metadata(format!("/proc/{pid}")).with_context(|| format!("no process {pid}"))?;
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // Field 4, the parent, is the second after the command name.
            parents.push((p, field(&stat_fields(&stat), 1) as u32));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    Ok(out)
}

/// The fields of a `stat` line after the command name (field 3, the state, first).
fn stat_fields(stat: &str) -> Vec<&str> {
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().collect()
}

fn field(fields: &[&str], i: usize) -> u64 {
    fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0)
}

/// `getconf CLK_TCK`, the unit of `/proc/<pid>/stat` times (100 on Linux).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_a_child_are_counted() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let procs = tree(me).unwrap();
        assert_eq!(procs[0], me);
        assert!(procs.contains(&child.id()), "{procs:?}");
        assert!(status_kib(me, "VmRSS").unwrap() > 0);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        // Spinning shows up as run time, however busy the machine is.
        let before = thread_run_ns(me).unwrap();
        let spin = std::time::Instant::now();
        let mut ran = 0.0;
        while ran < 0.02 && spin.elapsed() < std::time::Duration::from_secs(20) {
            ran = run_seconds_between(&before, &thread_run_ns(me).unwrap());
        }
        assert!(ran >= 0.02, "{ran} s after {:?}", spin.elapsed());
        child.kill().unwrap();
        let _ = child.wait();
    }
}
