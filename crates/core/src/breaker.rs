//! The circuit breaker of a queue (seed 002): opened by hand, or automatically when the
//! queue's failure rate over a window crosses a threshold; half-open after a cool-down,
//! where successes close it again and a failure re-opens it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A breaker's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Tasks flow.
    Closed,
    /// New tasks are refused.
    Open,
    /// Probing: tasks flow; enough successes close it, a failure re-opens it.
    HalfOpen,
}

/// Tuning of the automatic behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Failure share (0–1) over a window that opens the breaker.
    pub failure_threshold: f64,
    /// Outcomes a window needs before the share counts (a single failure is no trend).
    pub min_samples: u32,
    /// Window length, seconds (tumbling).
    pub window_secs: f64,
    /// Seconds an automatically opened breaker waits before probing.
    pub cooldown_secs: f64,
    /// Successes in half-open that close it.
    pub probe_successes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 0.5,
            min_samples: 10,
            window_secs: 60.0,
            cooldown_secs: 30.0,
            probe_successes: 3,
        }
    }
}

/// One queue's breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breaker {
    /// The queue it guards.
    pub queue: String,
    /// Position as of the last change (see [`Breaker::state_at`]).
    pub state: BreakerState,
    /// When it last opened, seconds since the epoch.
    pub opened_at: Option<f64>,
    /// When it last closed.
    pub closed_at: Option<f64>,
    /// Why it last changed.
    pub reason: Option<String>,
    /// Opened by hand: stays open until closed by hand.
    pub manual: bool,
    /// Start of the current window.
    pub window_start: f64,
    /// Failures in the current window.
    pub failures: u32,
    /// Successes in the current window.
    pub successes: u32,
    /// Successes seen while half-open.
    pub probes: u32,
}

impl Breaker {
    /// A closed breaker for `queue`.
    pub fn new(queue: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            state: BreakerState::Closed,
            opened_at: None,
            closed_at: None,
            reason: None,
            manual: false,
            window_start: 0.0,
            failures: 0,
            successes: 0,
            probes: 0,
        }
    }

    /// Position at `now`: an automatically opened breaker past its cool-down is half-open.
    pub fn state_at(&self, now: f64, cfg: &BreakerConfig) -> BreakerState {
        match (self.state, self.opened_at) {
            (BreakerState::Open, Some(t)) if !self.manual && now - t >= cfg.cooldown_secs => {
                BreakerState::HalfOpen
            }
            (s, _) => s,
        }
    }

    /// Whether new tasks are admitted at `now`.
    pub fn admits(&self, now: f64, cfg: &BreakerConfig) -> bool {
        self.state_at(now, cfg) != BreakerState::Open
    }

    /// Opens by hand.
    pub fn open(&mut self, reason: Option<String>, now: f64) {
        self.state = BreakerState::Open;
        self.opened_at = Some(now);
        self.manual = true;
        self.reason = reason.or_else(|| Some("opened manually".into()));
        self.probes = 0;
    }

    /// Closes by hand (or after probing), starting a fresh window.
    pub fn close(&mut self, reason: Option<String>, now: f64) {
        self.state = BreakerState::Closed;
        self.closed_at = Some(now);
        self.manual = false;
        self.reason = reason.or_else(|| Some("closed manually".into()));
        self.reset_window(now);
    }

    fn reset_window(&mut self, now: f64) {
        self.window_start = now;
        self.failures = 0;
        self.successes = 0;
        self.probes = 0;
    }

    /// Records a task outcome at `now`; returns `true` when the state changed.
    pub fn record(&mut self, success: bool, now: f64, cfg: &BreakerConfig) -> bool {
        match self.state_at(now, cfg) {
            BreakerState::Open => false,
            BreakerState::HalfOpen if success => {
                self.state = BreakerState::HalfOpen;
                self.probes += 1;
                if self.probes >= cfg.probe_successes {
                    self.close(Some(format!("{} successful probes", self.probes)), now);
                }
                true
            }
            BreakerState::HalfOpen => {
                self.trip("a probe failed while half-open".into(), now);
                true
            }
            BreakerState::Closed => self.count(success, now, cfg),
        }
    }

    fn count(&mut self, success: bool, now: f64, cfg: &BreakerConfig) -> bool {
        if now - self.window_start >= cfg.window_secs {
            self.reset_window(now);
        }
        if success {
            self.successes += 1;
        } else {
            self.failures += 1;
        }
        let total = self.failures + self.successes;
        let rate = f64::from(self.failures) / f64::from(total.max(1));
        if total >= cfg.min_samples && rate >= cfg.failure_threshold {
            let reason = format!(
                "failure rate {:.0}% ({} of {}) over {:.0}s reached the {:.0}% threshold",
                rate * 100.0,
                self.failures,
                total,
                cfg.window_secs,
                cfg.failure_threshold * 100.0
            );
            self.trip(reason, now);
            return true;
        }
        false
    }

    fn trip(&mut self, reason: String, now: f64) {
        self.state = BreakerState::Open;
        self.opened_at = Some(now);
        self.manual = false;
        self.reason = Some(reason);
        self.probes = 0;
    }

    /// Seed 002's `data`: `{state, opened_at, closed_at, metadata}`.
    pub fn status(&self, now: f64, cfg: &BreakerConfig) -> Value {
        json!({
            "state": self.state_at(now, cfg),
            "opened_at": self.opened_at.map(crate::time::iso8601),
            "closed_at": self.closed_at.map(crate::time::iso8601),
            "metadata": {
                "queue": self.queue,
                "reason": self.reason,
                "manual": self.manual,
                "failures": self.failures,
                "successes": self.successes,
                "window_secs": cfg.window_secs,
                "failure_threshold": cfg.failure_threshold,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            min_samples: 4,
            ..BreakerConfig::default()
        }
    }

    #[test]
    fn opens_on_failure_rate_then_half_opens_then_closes() {
        let c = cfg();
        let mut b = Breaker::new("q");
        assert!(!b.record(true, 0.0, &c));
        assert!(!b.record(false, 1.0, &c));
        assert!(!b.record(false, 2.0, &c), "3 samples are below the minimum");
        assert!(b.record(false, 3.0, &c), "3 of 4 failed");
        assert_eq!(b.state_at(3.0, &c), BreakerState::Open);
        assert!(!b.admits(10.0, &c));
        assert_eq!(b.state_at(33.0, &c), BreakerState::HalfOpen);
        assert!(b.admits(33.0, &c));
        for t in [34.0, 35.0] {
            b.record(true, t, &c);
            assert_eq!(b.state, BreakerState::HalfOpen);
        }
        b.record(true, 36.0, &c);
        assert_eq!((b.state, b.closed_at), (BreakerState::Closed, Some(36.0)));
    }

    #[test]
    fn a_failed_probe_reopens() {
        let c = cfg();
        let mut b = Breaker::new("q");
        for t in 0..4 {
            b.record(false, f64::from(t), &c);
        }
        assert!(b.record(false, 40.0, &c));
        assert_eq!(
            (b.state_at(41.0, &c), b.opened_at),
            (BreakerState::Open, Some(40.0))
        );
    }

    #[test]
    fn windows_roll_over() {
        let c = cfg();
        let mut b = Breaker::new("q");
        b.record(false, 0.0, &c);
        b.record(false, 1.0, &c);
        b.record(false, 2.0, &c);
        b.record(false, 61.0, &c);
        assert_eq!(
            (b.state, b.failures),
            (BreakerState::Closed, 1),
            "old failures expired"
        );
    }

    #[test]
    fn manual_open_stays_until_closed_and_renders_seed_shape() {
        let c = cfg();
        let mut b = Breaker::new("q");
        b.open(Some("maintenance".into()), 1_700_000_000.0);
        assert_eq!(
            b.state_at(1_800_000_000.0, &c),
            BreakerState::Open,
            "no cool-down for manual"
        );
        let s = b.status(1_700_000_001.0, &c);
        assert_eq!(s["state"], "open");
        assert_eq!(s["opened_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(s["closed_at"], Value::Null);
        assert_eq!(s["metadata"]["reason"], "maintenance");
        b.close(None, 1_700_000_100.0);
        assert_eq!(b.status(1_700_000_100.0, &c)["state"], "closed");
    }
}
