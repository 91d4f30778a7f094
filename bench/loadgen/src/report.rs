//! The numbers of one run and their markdown rows.

use crate::client::Received;

/// Header of the load table; one [`LoadRow`] per (scenario, server).
pub const LOAD_HEADER: &str = "| scenario | server | delivered / expected | p50 ms | p99 ms | max ms | deliveries/s | server CPU s | deliveries per CPU-s | peak RSS MB |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

/// Header of the idle-connection table.
pub const IDLE_HEADER: &str = "| server | idle connections | RSS before MB | RSS after MB | KB per connection |\n| --- | ---: | ---: | ---: | ---: |";

/// One scenario against one server.
pub struct LoadRow {
    /// e.g. `100 × 200/s`.
    pub scenario: String,
    /// Server name.
    pub server: String,
    /// Deliveries expected: clients × events.
    pub expected: u64,
    /// Server CPU seconds from the first publish to the end of the drain; `None` for a
    /// row of part of the clients, whose deliveries are not all the CPU was spent on.
    pub cpu_s: Option<f64>,
    /// Server peak RSS (VmHWM) in KiB.
    pub peak_kib: u64,
    /// Seconds from the first publish to the last delivery.
    pub span_s: f64,
}

impl LoadRow {
    /// The markdown row for what the clients `received`.
    pub fn render(&self, received: &[Received]) -> String {
        let mut lat: Vec<u32> = received
            .iter()
            .flat_map(|r| r.latencies_us.iter().copied())
            .collect();
        lat.sort_unstable();
        let delivered = lat.len() as u64;
        let ms = |p: f64| match lat.len() {
            0 => "-".to_owned(),
            n => format!(
                "{:.1}",
                f64::from(lat[((n as f64 * p) as usize).min(n - 1)]) / 1000.0
            ),
        };
        let per_s = delivered as f64 / self.span_s.max(1e-9);
        let per_cpu = match self.cpu_s {
            Some(cpu) if cpu > 0.0 => format!("{:.0}", delivered as f64 / cpu),
            _ => "-".into(),
        };
        let cpu = self.cpu_s.map_or("-".into(), |c| format!("{c:.2}"));
        format!(
            "| {} | {} | {delivered} / {} | {} | {} | {} | {per_s:.0} | {cpu} | {per_cpu} | {:.0} |",
            self.scenario,
            self.server,
            self.expected,
            ms(0.5),
            ms(0.99),
            ms(1.0),
            self.peak_kib as f64 / 1024.0,
        )
    }
}

/// Duplicates and ids that were never published, summed over all clients.
pub fn anomalies(received: &[Received]) -> (u64, u64) {
    received
        .iter()
        .fold((0, 0), |(d, u), r| (d + r.duplicates, u + r.unknown))
}

/// How many clients the server disconnected before the end, and the first reason.
pub fn ended_early(received: &[Received]) -> (usize, Option<&str>) {
    let mut ended = received.iter().filter_map(|r| r.ended_early.as_deref());
    let first = ended.next();
    (first.map_or(0, |_| 1 + ended.count()), first)
}

/// Nanoseconds of the last delivery any client saw.
pub fn last_delivery_ns(received: &[Received]) -> u64 {
    received.iter().map(|r| r.last_ns).max().unwrap_or(0)
}

/// The idle-connection row.
pub fn idle_row(server: &str, clients: usize, before_kib: u64, after_kib: u64) -> String {
    let per = after_kib.saturating_sub(before_kib) as f64 / clients.max(1) as f64;
    format!(
        "| {server} | {clients} | {:.0} | {:.0} | {per:.1} |",
        before_kib as f64 / 1024.0,
        after_kib as f64 / 1024.0,
    )
}
