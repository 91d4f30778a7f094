//! Per-caller request rate limit for the REST routes: a token bucket per bearer token
//! (per client address for calls without one). Over the limit, callers get 429 with
//! `Retry-After`. Memory is bounded: idle callers' buckets are forgotten.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most callers tracked at once; past this, idle (full) buckets are dropped first.
const MAX_CALLERS: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The limiter.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

impl RateLimiter {
    /// `per_sec` requests a second per caller, bursts of `burst`.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The caller's key: its bearer token, or its address.
    pub fn key(authorization: Option<&[u8]>, client: std::net::IpAddr) -> u64 {
        let mut h = DefaultHasher::new();
        match authorization {
            Some(a) => a.hash(&mut h),
            None => client.hash(&mut h),
        }
        h.finish()
    }

    /// Takes one request's token, or says how long until one is available.
    pub fn check(&self, key: u64, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(&key) {
            self.forget_idle(&mut buckets, now);
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - b.tokens) / self.per_sec.max(f64::MIN_POSITIVE),
            ))
        }
    }

    fn forget_idle(&self, buckets: &mut HashMap<u64, Bucket>, now: Instant) {
        let refill = Duration::from_secs_f64(self.burst / self.per_sec.max(f64::MIN_POSITIVE));
        buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_caller() {
        let l = RateLimiter::new(10, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.check(1, t0).is_ok()));
        let wait = l.check(1, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(l.check(2, t0).is_ok(), "other callers are not affected");
        assert!(l.check(1, t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn keys_differ_by_token_and_address() {
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        assert_ne!(
            RateLimiter::key(Some(b"Bearer a"), ip),
            RateLimiter::key(Some(b"Bearer b"), ip)
        );
        assert_eq!(RateLimiter::key(None, ip), RateLimiter::key(None, ip));
    }
}
