//! The numbers of one run: computed once, printed as a markdown row and kept as a JSON
//! record (see [`crate::results`]).

use serde_json::{json, Value};

use crate::client::{Received, Transport};

/// Header of the load table; one [`LoadRow`] per (scenario, server).
pub const LOAD_HEADER: &str = "| scenario | server | delivered / expected | p50 ms | p99 ms | max ms | deliveries/s | server CPU s | deliveries per CPU-s | peak RSS MB |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

/// Header of the idle-connection table.
pub const IDLE_HEADER: &str = "| server | idle connections | RSS before MB | RSS after MB | KB per connection |\n| --- | ---: | ---: | ---: | ---: |";

/// One scenario against one server, as measured.
pub struct LoadRow {
    /// The transport.
    pub transport: Transport,
    /// Clients.
    pub clients: usize,
    /// Events per second.
    pub rate: u64,
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
    /// The JSON record of what the clients `received`.
    pub fn record(&self, received: &[Received]) -> Value {
        let mut lat: Vec<u32> = received
            .iter()
            .flat_map(|r| r.latencies_us.iter().copied())
            .collect();
        lat.sort_unstable();
        let delivered = lat.len() as u64;
        let ms = |p: f64| match lat.len() {
            0 => Value::Null,
            n => json!(f64::from(lat[((n as f64 * p) as usize).min(n - 1)]) / 1000.0),
        };
        let per_cpu = self
            .cpu_s
            .filter(|&c| c > 0.0)
            .map(|c| (delivered as f64 / c).round());
        json!({
            "kind": "load",
            "transport": self.transport.name(),
            "clients": self.clients,
            "rate": self.rate,
            "server": self.server,
            "delivered": delivered,
            "expected": self.expected,
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "max_ms": ms(1.0),
            "deliveries_per_s": (delivered as f64 / self.span_s.max(1e-9)).round(),
            "cpu_s": self.cpu_s,
            "deliveries_per_cpu_s": per_cpu,
            "peak_rss_mb": self.peak_kib as f64 / 1024.0,
        })
    }
}

/// The markdown row of a load record.
pub fn load_row(r: &Value) -> String {
    format!(
        "| {} × {}/s | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
        r["clients"],
        r["rate"],
        text(&r["server"]),
        r["delivered"],
        r["expected"],
        number(&r["p50_ms"], 1),
        number(&r["p99_ms"], 1),
        number(&r["max_ms"], 1),
        number(&r["deliveries_per_s"], 0),
        number(&r["cpu_s"], 2),
        number(&r["deliveries_per_cpu_s"], 0),
        number(&r["peak_rss_mb"], 0),
    )
}

/// The JSON record of an idle measurement.
pub fn idle_record(
    transport: Transport,
    server: &str,
    clients: usize,
    before_kib: u64,
    after_kib: u64,
) -> Value {
    let per = after_kib.saturating_sub(before_kib) as f64 / clients.max(1) as f64;
    // Nothing connected: no per-connection figure.
    let per = (clients > 0).then(|| (per * 10.0).round() / 10.0);
    json!({
        "kind": "idle",
        "transport": transport.name(),
        "server": server,
        "connections": clients,
        "rss_before_mb": before_kib as f64 / 1024.0,
        "rss_after_mb": after_kib as f64 / 1024.0,
        // KiB, as /proc reports it; the tables call it KB as issue 4's did.
        "kb_per_connection": per,
    })
}

/// The markdown row of an idle record.
pub fn idle_row(r: &Value) -> String {
    format!(
        "| {} | {} | {} | {} | {} |",
        text(&r["server"]),
        r["connections"],
        number(&r["rss_before_mb"], 0),
        number(&r["rss_after_mb"], 0),
        number(&r["kb_per_connection"], 1),
    )
}

/// A string field, or `-`.
pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// A number with `decimals` decimals, or `-` when missing.
pub fn number(v: &Value, decimals: usize) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.decimals$}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_renders_as_the_row_it_always_was() {
        let got = Received {
            latencies_us: vec![1000, 2000, 3000, 4000],
            last_ns: 2_000_000_000,
            ..Received::default()
        };
        let row = LoadRow {
            transport: Transport::Sse,
            clients: 2,
            rate: 2,
            server: "floor".into(),
            expected: 4,
            cpu_s: Some(0.5),
            peak_kib: 2048,
            span_s: 2.0,
        };
        let r = row.record(&[got]);
        assert_eq!(r["transport"], "SSE");
        assert_eq!(
            load_row(&r),
            "| 2 × 2/s | floor | 4 / 4 | 3.0 | 4.0 | 4.0 | 2 | 0.50 | 8 | 2 |"
        );
        let part = LoadRow { cpu_s: None, ..row };
        assert_eq!(
            load_row(&part.record(&[])),
            "| 2 × 2/s | floor | 0 / 4 | - | - | - | 0 | - | - | 2 |"
        );
        let idle = idle_record(Transport::Ws, "node", 2000, 10 * 1024, 50 * 1024);
        assert_eq!(idle_row(&idle), "| node | 2000 | 10 | 50 | 20.5 |");
        let none = idle_record(Transport::Sse, "pushpin", 0, 1024, 2048);
        assert_eq!(idle_row(&none), "| pushpin | 0 | 1 | 2 | - |");
    }
}
