//! Wall-clock time, in the units the domain uses.

use std::time::{SystemTime, UNIX_EPOCH};

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Seconds since the epoch.
pub fn secs() -> f64 {
    since_epoch().as_secs_f64()
}

/// Milliseconds since the epoch.
pub fn millis() -> u64 {
    since_epoch().as_millis() as u64
}

/// Microseconds since the epoch.
pub fn micros() -> u64 {
    since_epoch().as_micros() as u64
}
