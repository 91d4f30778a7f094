//! Resume: a client that reconnects with its last sequence number (`Last-Event-ID`,
//! `?since=`) gets every event it missed from the log, in order and without
//! duplicates, or a `reset` when it is further behind than the kept history.

use std::sync::Arc;

use crate::hub::{Payload, Subscription};
use crate::metrics::Metrics;
use crate::PushState;

/// What a resuming connection sends before going live.
pub enum Catchup {
    /// The missed events, then live messages after `upto`.
    Replay {
        /// The missed events' payloads, in order.
        frames: Vec<Arc<Payload>>,
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
/// sequenced later arrives live, so nothing falls between the two. A gap the log no
/// longer holds, or older than the configured history age, is a `reset`; so is a cursor
/// past the head, which comes from a history this server does not have.
pub async fn catch_up(app: &PushState, sub: &Subscription, since: u64) -> anyhow::Result<Catchup> {
    let log = app.log();
    let head = log.head().await?;
    if since > head {
        return Ok(reset(app, head));
    }
    let max_age_ms = app.push().history_max_age.as_millis() as u64;
    let oldest_ms = crate::hub::now_ms().saturating_sub(max_age_ms);
    let mut missed = Vec::new();
    if since < head {
        for p in log.read(since + 1, head).await? {
            // Gone from the log's history, or older than the replay age: refetch.
            match p {
                Some(p) if max_age_ms == 0 || p.event.ts >= oldest_ms => missed.push(p),
                _ => return Ok(reset(app, head)),
            }
        }
    }
    let missed = vigil_log::with_derived(missed);
    Metrics::inc(&app.metrics().resume_hits);
    // Also when nothing was missed: live events up to the head are not sent again.
    let frames = app.hub().replay(sub.id, missed, head).await;
    Ok(Catchup::Replay { frames, upto: head })
}

fn reset(app: &PushState, head: u64) -> Catchup {
    Metrics::inc(&app.metrics().resume_misses);
    Catchup::Reset { seq: head }
}
