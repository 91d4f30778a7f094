//! Resume: a client that reconnects with its last sequence number (`Last-Event-ID`,
//! `?since=`) gets every event it missed from the log, in order and without
//! duplicates, or a `reset` when it is further behind than the kept history.

use std::sync::Arc;

use vigil_core::event::Event;
use vigil_core::keys;

use crate::hub::{Hub, Outgoing, Published, Subscription};
use crate::kv::KvBackend;

/// What a resuming connection sends before going live.
pub enum Catchup {
    /// The missed events, then live messages after `upto`.
    Replay {
        /// The missed events' frames, in order.
        frames: Vec<Outgoing>,
        /// Live messages up to here duplicate the replay: skip them.
        upto: u64,
    },
    /// The gap is gone from the history: refetch the snapshot.
    Reset {
        /// Continue from here.
        seq: u64,
    },
}

/// The cursor a client resumes from: the `Last-Event-ID` header, else `?since=`.
pub fn cursor(last_event_id: Option<&str>, since: Option<u64>) -> Option<u64> {
    last_event_id.and_then(|v| v.trim().parse().ok()).or(since)
}

/// Reads the events after `since` for `sub`. Call it after subscribing: anything
/// sequenced later arrives live, so nothing falls between the two.
pub async fn catch_up(
    kv: &Arc<dyn KvBackend>,
    hub: &Hub,
    sub: &Subscription,
    since: u64,
) -> anyhow::Result<Catchup> {
    let head = match kv.get(keys::SEQ_KEY).await? {
        Some(b) => String::from_utf8_lossy(&b).parse()?,
        None => 0,
    };
    let mut missed = Vec::new();
    for seq in since + 1..=head {
        let Some(bytes) = kv.get(&keys::event(seq)).await? else {
            return Ok(Catchup::Reset { seq: head });
        };
        let json = String::from_utf8(bytes)?;
        let event: Event = serde_json::from_str(&json)?;
        missed.push(Arc::new(Published { event, json }));
    }
    let frames = if missed.is_empty() {
        Vec::new()
    } else {
        hub.replay(sub.id, missed).await
    };
    Ok(Catchup::Replay { frames, upto: head })
}
