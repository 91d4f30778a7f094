//! The per-subscriber token bucket: `rate-per-sec` messages a second, bursts up to
//! the same number.

use crate::RateState;

/// Thousandths of a token per message: integer arithmetic keeps it exact across calls.
const MILLI: u64 = 1000;

/// The bucket refilled up to `now_ms`.
pub fn refill(state: RateState, rate_per_sec: u32, now_ms: u64) -> RateState {
    let capacity = u64::from(rate_per_sec) * MILLI;
    let elapsed = now_ms.saturating_sub(state.last_refill_ms);
    // rate_per_sec tokens per 1000 ms = rate_per_sec milli-tokens per ms.
    let tokens = state
        .tokens_milli
        .saturating_add(elapsed.saturating_mul(u64::from(rate_per_sec)))
        .min(capacity);
    RateState {
        tokens_milli: tokens,
        last_refill_ms: now_ms.max(state.last_refill_ms),
    }
}

/// Takes one message's token if there is one.
pub fn take(state: &mut RateState) -> bool {
    if state.tokens_milli >= MILLI {
        state.tokens_milli -= MILLI;
        true
    } else {
        false
    }
}

/// A fresh subscriber's bucket: full.
pub fn full(rate_per_sec: u32, now_ms: u64) -> RateState {
    RateState {
        tokens_milli: u64::from(rate_per_sec) * MILLI,
        last_refill_ms: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_per_second_then_refills() {
        let mut s = full(10, 0);
        assert_eq!((0..15).filter(|_| take(&mut s)).count(), 10);
        s = refill(s, 10, 100); // 100 ms buys one message
        assert!(take(&mut s));
        assert!(!take(&mut s));
        s = refill(s, 10, 10_000);
        assert_eq!(s.tokens_milli, 10 * MILLI, "never above the burst");
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let s = refill(
            RateState {
                tokens_milli: 0,
                last_refill_ms: 500,
            },
            10,
            100,
        );
        assert_eq!(
            s,
            RateState {
                tokens_milli: 0,
                last_refill_ms: 500
            }
        );
    }
}
