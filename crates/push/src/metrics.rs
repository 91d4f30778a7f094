//! Prometheus metrics of the push side, served at `GET /metrics` in the text
//! exposition format. Plain atomics: the hub and every connection update them without
//! locks on the hot path (the per-event counter takes one lock per published batch).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A push transport, for the connections gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /events`.
    Sse,
    /// `GET /ws`.
    WebSocket,
    /// `/socket.io/`.
    SocketIo,
}

impl Transport {
    const ALL: [Self; 3] = [Self::Sse, Self::WebSocket, Self::SocketIo];

    fn label(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::WebSocket => "websocket",
            Self::SocketIo => "socketio",
        }
    }
}

/// A histogram with fixed bucket bounds.
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit, so it fits an atomic integer.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        self.observe_n(v, 1);
    }

    /// Records `n` observations of the same value.
    fn observe_n(&self, v: f64, n: u64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(n, Relaxed);
        }
        self.count.fetch_add(n, Relaxed);
        self.sum_micro.fetch_add((v * 1e6) as u64 * n, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum_micro.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

const SIZE_BUCKETS: &[f64] = &[64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0];
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// Every push metric.
pub struct Metrics {
    connections: [AtomicI64; 3],
    sent_by_event: Mutex<BTreeMap<Arc<str>, u64>>,
    message_bytes: Histogram,
    dispatch_seconds: Histogram,
    /// Events the relay sequenced and handed to the hub.
    pub events_published: AtomicU64,
    /// Subscriber records the hub passed to the dispatch component's `decide`, summed
    /// over publishes: one per distinct subscription, however many connections share it.
    pub dispatch_records: AtomicU64,
    /// Distinct subscriptions (records the component decides for) at the last publish.
    pub subscriptions_distinct: AtomicU64,
    /// Updates held over a connection's rate for its next `batch_update`.
    pub rate_limited: AtomicU64,
    /// Held updates replaced by a newer one with the same key.
    pub conflated: AtomicU64,
    /// `batch_update` messages sent.
    pub batches: AtomicU64,
    /// Connections switched to latest-state-only delivery.
    pub degraded: AtomicU64,
    /// Connections closed as slow consumers.
    pub dropped: AtomicU64,
    /// Reading connections told to `reset` because their held updates overflowed.
    pub overflow_resets: AtomicU64,
    /// Resumes served from the history.
    pub resume_hits: AtomicU64,
    /// Resumes too far behind, answered with `reset`.
    pub resume_misses: AtomicU64,
    /// Open connections whose token expired.
    pub expired: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connections: Default::default(),
            sent_by_event: Mutex::default(),
            message_bytes: Histogram::new(SIZE_BUCKETS),
            dispatch_seconds: Histogram::new(LATENCY_BUCKETS),
            events_published: AtomicU64::new(0),
            dispatch_records: AtomicU64::new(0),
            subscriptions_distinct: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            conflated: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            degraded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            overflow_resets: AtomicU64::new(0),
            resume_hits: AtomicU64::new(0),
            resume_misses: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        }
    }
}

/// Counts one open connection until dropped.
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    transport: Transport,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections[self.transport as usize].fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    /// Counts a connection of `transport` for as long as the guard lives.
    pub fn connected(self: &Arc<Self>, transport: Transport) -> ConnectionGuard {
        self.connections[transport as usize].fetch_add(1, Relaxed);
        ConnectionGuard {
            metrics: self.clone(),
            transport,
        }
    }

    /// Records `count` messages of one event name and size queued to connections.
    pub fn sent(&self, kind: &Arc<str>, size: usize, count: u64) {
        if count == 0 {
            return;
        }
        self.message_bytes.observe_n(size as f64, count);
        let mut by_event = self.sent_by_event.lock().unwrap_or_else(|e| e.into_inner());
        match by_event.get_mut(kind) {
            Some(n) => *n += count,
            None => {
                by_event.insert(kind.clone(), count);
            }
        }
    }

    /// Records how long one dispatch component call took.
    pub fn dispatch_call(&self, took: Duration) {
        self.dispatch_seconds.observe(took.as_secs_f64());
    }

    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP vigil_connections Open push connections.\n# TYPE vigil_connections gauge"
        );
        for t in Transport::ALL {
            let n = self.connections[t as usize].load(Relaxed);
            let _ = writeln!(out, "vigil_connections{{transport=\"{}\"}} {n}", t.label());
        }
        let _ = writeln!(
            out,
            "# HELP vigil_messages_sent_total Messages queued to push connections, by event.\n# TYPE vigil_messages_sent_total counter"
        );
        let by_event = self.sent_by_event.lock().unwrap_or_else(|e| e.into_inner());
        for (kind, n) in by_event.iter() {
            let _ = writeln!(out, "vigil_messages_sent_total{{event=\"{kind}\"}} {n}");
        }
        drop(by_event);
        self.message_bytes.render(
            &mut out,
            "vigil_message_bytes",
            "Size of messages queued to push connections.",
        );
        self.dispatch_seconds.render(
            &mut out,
            "vigil_dispatch_call_seconds",
            "Duration of one dispatch component call.",
        );
        let _ = writeln!(
            out,
            "# HELP vigil_push_subscriptions_distinct Distinct push subscriptions (filter, encoding, rate state) the dispatch component decided for at the last publish; connections sharing one count once.\n# TYPE vigil_push_subscriptions_distinct gauge\nvigil_push_subscriptions_distinct {}",
            self.subscriptions_distinct.load(Relaxed)
        );
        let counters: [(&str, &str, &AtomicU64); 11] = [
            (
                "vigil_events_published_total",
                "Events sequenced and handed to the hub.",
                &self.events_published,
            ),
            (
                "vigil_dispatch_records_total",
                "Subscriber records passed to the dispatch component by publishes (one per distinct subscription).",
                &self.dispatch_records,
            ),
            (
                "vigil_rate_limited_total",
                "Updates held over a connection's rate for a batch_update.",
                &self.rate_limited,
            ),
            (
                "vigil_conflated_total",
                "Held updates replaced by a newer one for the same key.",
                &self.conflated,
            ),
            (
                "vigil_batch_updates_total",
                "batch_update messages sent.",
                &self.batches,
            ),
            (
                "vigil_degraded_total",
                "Connections switched to latest-state-only delivery.",
                &self.degraded,
            ),
            (
                "vigil_dropped_total",
                "Connections closed as slow consumers.",
                &self.dropped,
            ),
            (
                "vigil_overflow_resets_total",
                "Reading connections told to reset (refetch the snapshot) after a burst.",
                &self.overflow_resets,
            ),
            (
                "vigil_token_expired_total",
                "Open connections ended because their token expired.",
                &self.expired,
            ),
            (
                "vigil_resume_hits_total",
                "Resumes served from the event history.",
                &self.resume_hits,
            ),
            (
                "vigil_resume_misses_total",
                "Resumes beyond the history, answered with reset.",
                &self.resume_misses,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Arc::new(Metrics::default());
        let guard = m.connected(Transport::Sse);
        let _ws = m.connected(Transport::WebSocket);
        drop(guard);
        let kind: Arc<str> = "task_update".into();
        m.sent(&kind, 100, 1);
        m.sent(&kind, 2000, 1);
        m.dispatch_call(Duration::from_micros(300));
        Metrics::inc(&m.resume_hits);
        m.subscriptions_distinct.store(3, Relaxed);
        let text = m.render();
        assert!(
            text.contains("vigil_connections{transport=\"sse\"} 0"),
            "{text}"
        );
        assert!(text.contains("vigil_connections{transport=\"websocket\"} 1"));
        assert!(text.contains("vigil_messages_sent_total{event=\"task_update\"} 2"));
        assert!(text.contains("vigil_message_bytes_bucket{le=\"256\"} 1"));
        assert!(text.contains("vigil_message_bytes_bucket{le=\"4096\"} 2"));
        assert!(text.contains("vigil_message_bytes_count 2"));
        assert!(text.contains("vigil_dispatch_call_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("vigil_resume_hits_total 1"));
        assert!(text.contains("vigil_push_subscriptions_distinct 3"));
        assert!(text.contains("vigil_dispatch_records_total 0"));
    }
}
