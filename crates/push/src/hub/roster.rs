//! The active subscribers as the dispatch component sees them: one record per
//! distinct subscription, in `decide` order, each standing for every connection that
//! shares it.
//!
//! Connections whose records would be equal (filter, encoding, gzip, rate state, held
//! keys and count, degraded) get the same decisions, so the component decides for one
//! record and the hub fans the plan out to its members: 50 000 dashboards with one
//! filter are one record per publish, not 50 000. Members stay equal because they get
//! identical decisions; one that diverges (its queue degraded it, its held updates were
//! reset or flushed apart, its filter changed, it closed) is found before the next
//! publish, and the roster is regrouped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::frames::conflation_key;
use super::queue::Entry;
use super::task::HubTask;
use super::Published;
use crate::dispatch::{self, Encoding, Filter, RateState};

/// The distinct subscriptions as the component sees them, and who shares each.
#[derive(Default)]
pub(super) struct Roster {
    /// One record per distinct subscription, in `decide` order.
    pub(super) records: Vec<dispatch::Subscriber>,
    /// Per record, the index in [`HubTask::subs`] of every connection it stands for
    /// (never empty; the first is the one the record is read from).
    pub(super) members: Vec<Vec<usize>>,
    /// Subscribers came, went or changed filter since the records were made.
    pub(super) stale: bool,
}

/// What makes two subscribers' records equal, borrowed from their entries.
#[derive(PartialEq, Eq, Hash)]
struct Key<'a> {
    filter: &'a Filter,
    encoding: Encoding,
    gzip: bool,
    rate: RateState,
    degraded: bool,
    /// Conflation keys of what it holds, in order (empty when it holds nothing).
    held_keys: Vec<String>,
    held_count: usize,
}

impl<'a> Key<'a> {
    fn of(s: &'a Entry, filter: &'a Filter) -> Self {
        Self {
            filter,
            encoding: s.spec.encoding,
            gzip: s.spec.gzip,
            rate: s.rate,
            degraded: s.degraded,
            held_keys: held_keys(&s.held),
            held_count: s.held.len(),
        }
    }
}

fn held_keys(held: &[Arc<Published>]) -> Vec<String> {
    held.iter()
        .filter_map(|p| conflation_key(&p.event))
        .collect()
}

/// Whether `a` and `b` would get the same decisions from here on, given that they
/// were grouped (so share filter, encoding and gzip): same rate state, degradation and
/// held keys. Members that got identical decisions hold the very same events, so the
/// pointer comparison settles it without making the keys.
fn same_state(a: &Entry, b: &Entry) -> bool {
    a.rate == b.rate
        && a.degraded == b.degraded
        && a.held.len() == b.held.len()
        && a.held
            .iter()
            .zip(&b.held)
            .all(|(x, y)| Arc::ptr_eq(x, y) || conflation_key(&x.event) == conflation_key(&y.event))
}

/// The token bucket of a subscriber nothing was sent to yet: full (the component's
/// `rate::full`; thousandths of a message per token).
pub(super) fn full_bucket(rate_per_sec: u32, now_ms: u64) -> RateState {
    RateState {
        tokens_milli: u64::from(rate_per_sec) * 1000,
        last_refill_ms: now_ms,
    }
}

impl HubTask {
    /// What the component needs to know about `s`.
    pub(super) fn subscriber(&self, s: &Entry, filter: Filter) -> dispatch::Subscriber {
        dispatch::Subscriber {
            filter,
            encoding: s.spec.encoding,
            gzip: s.spec.gzip,
            rate_per_sec: self.config.rate_per_sec,
            rate: s.rate,
            held_keys: held_keys(&s.held),
            held_count: s.held.len() as u32,
            max_held: self.config.max_held,
            degraded: s.degraded,
        }
    }

    /// Brings the component's view of the subscribers up to date for a decision at
    /// `now_ms`: regrouped when subscribers or filters changed, a member diverged from
    /// its group or two groups became equal; otherwise only the fields a publish
    /// changes are copied from each group's first member.
    pub(super) fn update_roster(&mut self, now_ms: u64) {
        self.refill_full_buckets(now_ms);
        if self.roster.stale || !self.members_agree() {
            self.regroup();
        } else {
            self.refresh_records();
            if self.groups_overlap() {
                self.regroup();
            }
        }
        self.metrics
            .subscriptions_distinct
            .store(self.roster.records.len() as u64, Relaxed);
    }

    /// A full bucket is full however long ago it was last refilled: the component
    /// refills it at `now_ms` to exactly (full, `now_ms`). Doing that here first changes
    /// no decision, and lets connections that subscribed at different moments (each
    /// bucket stamped with its own subscribe time) and have been sent nothing since
    /// share one record. A stamp later than `now_ms` (the clock went back) is left as
    /// the component would leave it.
    fn refill_full_buckets(&mut self, now_ms: u64) {
        let full = full_bucket(self.config.rate_per_sec, now_ms);
        for s in &mut self.subs {
            if s.rate.tokens_milli == full.tokens_milli && s.rate.last_refill_ms <= now_ms {
                s.rate.last_refill_ms = now_ms;
            }
        }
    }

    /// Groups the subscribers with a filter by their record; those without one want
    /// nothing now, and the component never sees them.
    fn regroup(&mut self) {
        let mut index: HashMap<Key<'_>, usize> = HashMap::new();
        let mut records = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, s) in self.subs.iter().enumerate() {
            let Some(filter) = &s.spec.filter else {
                continue;
            };
            let next = members.len();
            let g = *index.entry(Key::of(s, filter)).or_insert(next);
            if g == next {
                records.push(self.subscriber(s, filter.clone()));
                members.push(Vec::new());
            }
            members[g].push(i);
        }
        self.roster = Roster {
            records,
            members,
            stale: false,
        };
    }

    /// Whether every member of every group is still in its first member's state.
    fn members_agree(&self) -> bool {
        self.roster.members.iter().all(|m| {
            let first = &self.subs[m[0]];
            m[1..].iter().all(|&i| same_state(first, &self.subs[i]))
        })
    }

    /// Copies what a publish or flush changes into each group's record.
    fn refresh_records(&mut self) {
        for (record, m) in self.roster.records.iter_mut().zip(&self.roster.members) {
            let s = &self.subs[m[0]];
            record.rate = s.rate;
            record.degraded = s.degraded;
            if !s.held.is_empty() || record.held_count != 0 {
                record.held_keys = held_keys(&s.held);
                record.held_count = s.held.len() as u32;
            }
        }
    }

    /// Whether two groups' records became equal (e.g. two buckets refilled to full),
    /// so they can be one again. Costs one hash per record, not per connection.
    fn groups_overlap(&self) -> bool {
        let mut seen = HashSet::with_capacity(self.roster.records.len());
        !self.roster.records.iter().all(|r| seen.insert(r))
    }

    /// Removes the subscribers closed during the last pass.
    pub(super) fn remove_closed(&mut self) {
        let before = self.subs.len();
        self.subs.retain(|s| !s.closed);
        if self.subs.len() != before {
            self.roster.stale = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::full_bucket;
    use vigil_dispatch::rate;

    /// What [`HubTask::refill_full_buckets`] relies on: the component's full bucket is
    /// the roster's, and refilling it at `now` gives (full, `now`) whenever it was
    /// stamped before.
    #[test]
    fn a_full_bucket_refilled_now_is_full_now_whenever_it_was_stamped() {
        for per_sec in [0, 1, 10, 1000] {
            let full = full_bucket(per_sec, 0).tokens_milli;
            assert_eq!(full, rate::full(per_sec, 0).tokens_milli);
            for stamp in [0, 1, 999, 5_000] {
                let r = rate::refill(rate::full(per_sec, stamp), per_sec, 5_000);
                assert_eq!((r.tokens_milli, r.last_refill_ms), (full, 5_000));
            }
        }
    }
}
