//! Per-connection push limits: what every transport's subscriptions are held to.

use std::time::Duration;

/// Push messages per connection per second before the excess is batched (seed 001).
pub const RATE_PER_SEC: u32 = 10;
/// Oldest gap a resuming client is replayed by default: a day covers a laptop closed
/// overnight; older gaps are better served by a fresh snapshot.
pub const HISTORY_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How often SSE clients get a `dashboard_update` by default (only when something
/// changed): often enough for a wall display, seldom enough to cost nothing.
pub const DASHBOARD_INTERVAL: Duration = Duration::from_secs(10);

/// Per-connection push limits.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Messages per second sent straight away (seed 001's default is 10).
    pub rate_per_sec: u32,
    /// Updates held for the next `batch_update` before a subscriber counts as too slow.
    pub max_held: u32,
    /// Most updates in one `batch_update` (seed 001: 50).
    pub batch_max: usize,
    /// How often held updates are flushed (seed 001: 500 ms).
    pub flush_interval: Duration,
    /// Frames queued per connection before it counts as a slow consumer.
    pub queue_capacity: usize,
    /// Interval of SSE heartbeat comments and WebSocket pings.
    pub heartbeat: Duration,
    /// Oldest event a resuming client is replayed; further behind it gets `reset`
    /// (the log's length, `ServeConfig::history`, bounds it too). Zero = no age limit.
    pub history_max_age: Duration,
    /// How often SSE clients get a `dashboard_update` snapshot (only when something
    /// changed); zero turns it off.
    pub dashboard_interval: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            rate_per_sec: RATE_PER_SEC,
            max_held: 1000,
            batch_max: 50,
            flush_interval: Duration::from_millis(500),
            queue_capacity: 1024,
            heartbeat: Duration::from_secs(15),
            history_max_age: HISTORY_MAX_AGE,
            dashboard_interval: DASHBOARD_INTERVAL,
        }
    }
}
