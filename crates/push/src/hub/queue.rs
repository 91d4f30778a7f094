//! A subscriber's queue and what fills it: its entry in the hub, what it is sent, and
//! the slow-consumer policy — degraded to latest state only when its queue is nearly
//! full, `reset` when its held updates overflow while it reads, closed (with the reason
//! as its last message) when it does not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::task::HubTask;
use super::{
    control, Payload, Published, Queue, Spec, Wire, CLOSE_SUBSCRIPTION_ENDED, CLOSING_EVENT,
    DEGRADED_EVENT,
};
use crate::dispatch::RateState;
use crate::metrics::Metrics;
use crate::overflow::{self, Overflow};

/// One subscriber, as the hub task keeps it.
pub(super) struct Entry {
    pub(super) id: u64,
    pub(super) spec: Spec,
    pub(super) out: Arc<Queue>,
    /// The Socket.IO namespace slot of a socket on its session's shared queue; `None`
    /// for a connection that is one subscription (SSE, the native WebSocket).
    pub(super) ns: Option<u8>,
    pub(super) last_seq: Arc<AtomicU64>,
    /// Ended by the hub (its queue closed); removed after the current pass.
    pub(super) closed: bool,
    /// Live events up to here were replayed to it already (a resumed connection).
    pub(super) replayed_upto: u64,
    pub(super) rate: RateState,
    /// Updates over the rate, waiting for the next `batch_update`; at most one per key.
    pub(super) held: Vec<Arc<Published>>,
    /// Its queue filled past [`Entry::nearly_full`]: latest state only until it drains.
    pub(super) degraded: bool,
    /// The last event of the round it was last told to `reset` in.
    pub(super) last_reset: Option<u64>,
}

impl Entry {
    /// Fewer than a quarter of the queue's slots are free.
    pub(super) fn nearly_full(&self) -> bool {
        self.out.nearly_full()
    }

    /// Queues `msg` unless the connection's replay held it; a full queue closes the
    /// subscriber as a slow consumer.
    pub(super) fn send(&mut self, msg: Arc<Payload>, metrics: &Metrics) {
        if crate::replayed(msg.seq, self.replayed_upto) {
            return;
        }
        let seq = msg.seq;
        if self
            .out
            .push(Wire::Payload {
                ns: self.ns.unwrap_or(0),
                payload: msg,
            })
            .is_err()
        {
            close(
                self,
                "slow consumer: the connection's queue is full",
                metrics,
            );
        } else if seq != 0 {
            self.last_seq.store(seq, Ordering::Relaxed);
        }
    }
}

impl HubTask {
    /// Switches subscribers whose queue is nearly full to latest-state-only delivery,
    /// telling them with a marker while there is still room for it.
    pub(super) fn degrade_the_nearly_full(&mut self) {
        for sub in &mut self.subs {
            if sub.degraded || !sub.nearly_full() {
                continue;
            }
            sub.degraded = true;
            Metrics::inc(&self.metrics.degraded);
            tracing::info!(
                subscriber = sub.id,
                "degrading slow subscriber to latest state only"
            );
            let marker = serde_json::json!({
                "type": DEGRADED_EVENT,
                "reason": "the connection is not keeping up: sending the latest state of each item only",
            });
            sub.send(control(DEGRADED_EVENT, &marker), &self.metrics);
        }
    }
}

/// Held updates overflowed: a reader is reset (once per round), a non-reader closed.
pub(super) fn overflowed(sub: &mut Entry, last_seq: u64, metrics: &Metrics) {
    let reads = !sub.degraded && !sub.nearly_full();
    match overflow::on_overflow(reads, sub.last_reset, last_seq) {
        Overflow::Close => close(sub, "slow consumer: too many updates held", metrics),
        Overflow::AlreadyReset => {}
        Overflow::Reset => {
            sub.held.clear();
            sub.last_reset = Some(last_seq);
            Metrics::inc(&metrics.overflow_resets);
            tracing::info!(
                subscriber = sub.id,
                seq = last_seq,
                "held updates overflowed; reset"
            );
            let body = overflow::reset_body(last_seq);
            sub.send(control(overflow::RESET_EVENT, &body), metrics);
        }
    }
}

/// Marks a slow subscriber closed; it is removed after the current pass, and its
/// connection sends what was queued, then ends telling `reason`.
pub(super) fn close(sub: &mut Entry, reason: &str, metrics: &Metrics) {
    if !sub.closed {
        Metrics::inc(&metrics.dropped);
        tracing::warn!(subscriber = sub.id, reason, "closing subscriber");
    }
    end(sub, reason);
}

/// Ends `sub` with `reason` (the connection drains what was queued first): its queue
/// closes; a Socket.IO socket on a shared session queue gets `closing {reason}` and its
/// namespace's DISCONNECT instead (the session's other sockets go on), or, with no room
/// left even for that, the whole session's queue closes.
pub(super) fn end(sub: &mut Entry, reason: &str) {
    sub.closed = true;
    let end = Wire::End {
        ns: sub.ns.unwrap_or(0),
        code: CLOSE_SUBSCRIPTION_ENDED,
        reason: reason.into(),
    };
    if let Some(ns) = sub.ns {
        let body = serde_json::json!({ "reason": reason });
        let closing = Wire::Payload {
            ns,
            payload: control(CLOSING_EVENT, &body),
        };
        if sub.out.push_all_control([closing, end]).is_err() {
            sub.out.close(reason);
        }
        return;
    }
    let _ = sub.out.push_control(end);
    sub.out.close(reason);
}
