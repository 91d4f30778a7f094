//! What happens when a subscriber's held updates overflow (more distinct items changed
//! within the rate limit's hold than [`crate::config::PushConfig::max_held`]): a client
//! that reads gets a `reset` — refetch the snapshot and continue from its `seq` — and
//! keeps its connection; only a client that does not read (its queue nearly full, so it
//! already got its `degraded` marker) is closed. A burst from producers is never a
//! reason to disconnect a reader.

/// Event telling a reading subscriber to refetch the snapshot and continue from `seq`
/// (the same `reset` resume sends when a client is beyond the kept history).
pub const RESET_EVENT: &str = "reset";

/// What an overflow of held updates does to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// It reads: drop what was held and tell it to refetch the snapshot.
    Reset,
    /// It does not read: close it as a slow consumer.
    Close,
    /// It was already told to reset for this round of events: nothing more.
    AlreadyReset,
}

/// The action for a subscriber whose held updates overflowed while `seq` (the last
/// event of the round) was published.
pub fn on_overflow(reads: bool, last_reset: Option<u64>, seq: u64) -> Overflow {
    match (reads, last_reset) {
        (false, _) => Overflow::Close,
        (true, Some(done)) if done >= seq => Overflow::AlreadyReset,
        (true, _) => Overflow::Reset,
    }
}

/// The `reset` marker: refetch the snapshot, then continue after `seq`.
pub fn reset_body(seq: u64) -> serde_json::Value {
    serde_json::json!({
        "type": RESET_EVENT,
        "seq": seq,
        "reason": "more items changed at once than this connection's rate allows: \
                   refetch the snapshot and continue from seq",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_are_reset_once_per_round_and_only_non_readers_closed() {
        assert_eq!(on_overflow(true, None, 10), Overflow::Reset);
        assert_eq!(on_overflow(true, Some(10), 10), Overflow::AlreadyReset);
        assert_eq!(on_overflow(true, Some(10), 11), Overflow::Reset);
        assert_eq!(on_overflow(false, None, 10), Overflow::Close);
        assert_eq!(on_overflow(false, Some(10), 10), Overflow::Close);
    }

    #[test]
    fn the_reset_marker_names_where_to_continue() {
        let body = reset_body(42);
        assert_eq!(
            (body["type"].as_str(), body["seq"].as_u64()),
            (Some("reset"), Some(42))
        );
    }
}
