//! The newest events in memory: what this host appended or read lately, so the hub's
//! reader and resuming clients get recent events without a round trip to storage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::Published;

/// Events kept. Resumes and the hub's reads are mostly of the last few hundred; the
/// rest come from storage.
const CAPACITY: usize = 4096;

pub(crate) struct Recent {
    map: Mutex<BTreeMap<u64, Arc<Published>>>,
    /// The log's history: an event this far behind the head is gone from storage, so
    /// the cache does not answer for it either.
    history: u64,
}

impl Recent {
    pub(crate) fn new(history: u64) -> Self {
        Self {
            map: Mutex::default(),
            history,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Published>>> {
        // Only inserts and lookups happen under the lock: a panic cannot leave it torn.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, events: &[Arc<Published>]) {
        let mut map = self.map();
        for p in events {
            map.insert(p.event.seq, p.clone());
        }
        while map.len() > CAPACITY {
            map.pop_first();
        }
    }

    /// `from..=to` as far as cached (`None` where not), with the log at `head`.
    pub(crate) fn get(&self, from: u64, to: u64, head: u64) -> Vec<Option<Arc<Published>>> {
        let map = self.map();
        let kept = |s: &u64| s + self.history > head;
        (from..=to)
            .map(|s| map.get(&s).filter(|_| kept(&s)).cloned())
            .collect()
    }

    /// Forgets everything (the log went back: these numbers will be reused).
    pub(crate) fn clear(&self) {
        self.map().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::event::Event;

    fn ev(seq: u64) -> Arc<Published> {
        Arc::new(Published::new(Event::new("x", "t", 0, serde_json::Value::Null), seq).unwrap())
    }

    #[test]
    fn keeps_the_newest_and_answers_what_it_has() {
        let r = Recent::new(u64::MAX / 2);
        let head = CAPACITY as u64 + 2;
        r.insert(&(1..=head).map(ev).collect::<Vec<_>>());
        let got = r.get(1, 4, head);
        assert!(
            got[0].is_none() && got[1].is_none(),
            "the oldest were dropped"
        );
        assert_eq!(got[2].as_ref().unwrap().event.seq, 3);
        r.clear();
        assert!(r.get(5, 5, head)[0].is_none());
    }

    #[test]
    fn answers_nothing_the_history_no_longer_holds() {
        let r = Recent::new(3);
        r.insert(&(1..=5).map(ev).collect::<Vec<_>>());
        let held = |head| r.get(1, 5, head).iter().filter(|p| p.is_some()).count();
        assert_eq!(held(5), 3);
        assert_eq!(held(7), 1, "two more appended elsewhere trim two more");
    }
}
