//! The active subscribers as the dispatch component sees them: one record each, in
//! `decide` order, rebuilt only when subscribers come, go or change filter.

use super::frames::conflation_key;
use super::queue::Entry;
use super::task::HubTask;
use crate::dispatch::{self, Filter};

/// The active subscribers as the dispatch component sees them, in `decide` order.
#[derive(Default)]
pub(super) struct Roster {
    /// Index in [`HubTask::subs`] of each record.
    pub(super) active: Vec<usize>,
    pub(super) records: Vec<dispatch::Subscriber>,
    /// Subscribers came, went or changed filter since the records were made.
    pub(super) stale: bool,
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
            held_keys: s
                .held
                .iter()
                .filter_map(|p| conflation_key(&p.event))
                .collect(),
            held_count: s.held.len() as u32,
            max_held: self.config.max_held,
            degraded: s.degraded,
        }
    }

    /// Brings the component's view of the subscribers up to date: rebuilt when
    /// subscribers or filters changed, otherwise only the fields a publish changes.
    pub(super) fn update_roster(&mut self) {
        if self.roster.stale {
            // Subscribers without a filter want nothing now: the component never sees them.
            let (active, records) = self
                .subs
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i, s, s.spec.filter.clone()?)))
                .map(|(i, s, filter)| (i, self.subscriber(s, filter)))
                .unzip();
            self.roster = Roster {
                active,
                records,
                stale: false,
            };
            return;
        }
        for (&i, record) in self.roster.active.iter().zip(&mut self.roster.records) {
            let s = &self.subs[i];
            record.rate = s.rate;
            record.degraded = s.degraded;
            if !s.held.is_empty() || record.held_count != 0 {
                record.held_keys = s
                    .held
                    .iter()
                    .filter_map(|p| conflation_key(&p.event))
                    .collect();
                record.held_count = s.held.len() as u32;
            }
        }
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
