//! The parking lot: long-polls waiting with no component instance (issue 14; the
//! protocol is [`vigil_rules::park`]). A parked long-poll is a [`Ticket`] in a group of
//! requests that would get the same answer (same method, path, query and verified
//! principal). Published events ([`ParkingLot::observe`]) wake the groups whose
//! interest they match; the first member of a woken group to run asks the component
//! once and every member shares the answer ([`Wake`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, OnceCell};
use vigil_core::error::ApiError;
use vigil_rules::park::{Interest, Park};

mod timeouts;
pub use timeouts::{Timeouts, SHARE_WINDOW};

/// Most long-polls parked at once; past it a new one is refused with 503. Each costs a
/// few KiB (its connection, request head and ticket), so this is ~0.5 GiB at worst:
/// generous for one host, and a bound a flood of clients cannot pass.
pub const MAX_PARKED: usize = 50_000;

/// A component's answer shared by every member of a woken group.
#[derive(Debug, Clone)]
pub enum Answer {
    /// For the clients: status, headers and the whole body.
    Final(http::StatusCode, http::HeaderMap, Bytes),
    /// Still nothing to answer: park again.
    Park(Park),
}

/// How long a group parked after an event it may have missed waits for the rest of
/// its members to park again (they re-park together after a shared answer) before it
/// is asked once for all of them.
pub const GATHER: Duration = Duration::from_millis(2);

/// A group's wake-up: fired once, then the one answer its members share.
#[derive(Default)]
pub struct Wake {
    fired: watch::Sender<bool>,
    /// Fired because the lot had seen events past what the component saw, not for an
    /// event that matched.
    stale: AtomicBool,
    /// The answer, asked for by the first member to get there.
    pub answer: OnceCell<Answer>,
}

struct Group {
    after: u64,
    interest: Interest,
    members: usize,
    wake: Arc<Wake>,
    /// Asked again after [`GATHER`] whatever is published.
    due: bool,
}

#[derive(Default)]
struct Lot {
    groups: HashMap<Arc<str>, Group>,
    /// Groups interested in one subject, by subject.
    by_subject: HashMap<String, HashSet<Arc<str>>>,
    /// Groups interested in any event or in topics.
    general: HashSet<Arc<str>>,
    /// The last sequence number observed.
    seen: u64,
}

/// Every parked long-poll of this host.
#[derive(Default)]
pub struct ParkingLot {
    lot: Mutex<Lot>,
    parked: AtomicUsize,
    calls: AtomicU64,
    /// Set once the host shuts down: nothing parks any more.
    closed: AtomicBool,
    /// Timeout answers shared by requests whose waits end together.
    pub timeouts: Timeouts,
}

/// A parked long-poll's place in the lot; dropping it (answered, timed out, or the
/// client gone) frees it.
pub struct Ticket {
    lot: Arc<ParkingLot>,
    key: Arc<str>,
    wake: Arc<Wake>,
}

impl ParkingLot {
    /// Long-polls parked now (for `/metrics`).
    pub fn parked(&self) -> usize {
        self.parked.load(Relaxed)
    }

    /// Component calls made for long-polls that may park, so far (for `/metrics`: with
    /// shared answers, far fewer than the long-polls answered).
    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    /// Wakes every parked long-poll and parks none from now on (the host shuts down:
    /// long-polls give their timeout answer now instead of holding the drain up).
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
        let mut lot = self.lot.lock().unwrap_or_else(|e| e.into_inner());
        for (_, group) in lot.groups.drain() {
            group.wake.fired.send_replace(true);
        }
        lot.by_subject.clear();
        lot.general.clear();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// Counts a component call for a long-poll.
    pub fn count_call(&self) {
        self.calls.fetch_add(1, Relaxed);
    }

    /// Parks a request of group `key` as `park` says. When the lot already saw an
    /// event after `park.after` (with `stale_check`), the component may have missed it:
    /// the group is asked again after [`GATHER`]. 503 when [`MAX_PARKED`] long-polls
    /// are parked.
    pub fn park(
        self: &Arc<Self>,
        key: &str,
        park: &Park,
        stale_check: bool,
    ) -> Result<Ticket, ApiError> {
        if self.parked.fetch_add(1, Relaxed) >= MAX_PARKED {
            self.parked.fetch_sub(1, Relaxed);
            return Err(ApiError::unavailable(
                "too many concurrent long-polls; retry shortly",
            ));
        }
        let mut lot = self.lot.lock().unwrap_or_else(|e| e.into_inner());
        let stale = stale_check && lot.seen > park.after;
        let key: Arc<str> = match lot.groups.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => lot.add(key, park),
        };
        let group = lot.groups.get_mut(&key).expect("just found or added");
        group.members += 1;
        group.after = group.after.min(park.after);
        if stale && !group.due {
            group.due = true;
            self.fire_later(key.clone(), group.wake.clone());
        }
        let wake = group.wake.clone();
        Ok(Ticket {
            lot: self.clone(),
            key,
            wake,
        })
    }

    /// Fires the group `key` (if it is still the one of `wake`) after [`GATHER`].
    fn fire_later(self: &Arc<Self>, key: Arc<str>, wake: Arc<Wake>) {
        let lot = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(GATHER).await;
            let Some(lot) = lot.upgrade() else { return };
            let mut lot = lot.lot.lock().unwrap_or_else(|e| e.into_inner());
            if lot
                .groups
                .get(&key)
                .is_some_and(|g| Arc::ptr_eq(&g.wake, &wake))
            {
                lot.remove(&key);
                wake.stale.store(true, Relaxed);
                wake.fired.send_replace(true);
            }
        });
    }

    /// Wakes every group an event of `events` (sequence number, topic, subject) may
    /// concern.
    pub fn observe<'a>(&self, events: impl IntoIterator<Item = (u64, &'a str, Option<&'a str>)>) {
        let mut guard = self.lot.lock().unwrap_or_else(|e| e.into_inner());
        let lot = &mut *guard;
        let mut woken = Vec::new();
        for (seq, topic, subject) in events {
            lot.seen = seq;
            let subjects = subject.and_then(|s| lot.by_subject.get(s)).into_iter();
            for key in subjects.flatten().chain(&lot.general) {
                let g = &lot.groups[key];
                if seq > g.after && g.interest.matches(topic, subject) {
                    woken.push(key.clone());
                }
            }
        }
        for key in woken {
            if let Some(group) = lot.remove(&key) {
                group.wake.fired.send_replace(true);
            }
        }
    }
}

impl Lot {
    fn add(&mut self, key: &str, park: &Park) -> Arc<str> {
        let key: Arc<str> = Arc::from(key);
        match &park.interest {
            Interest::Subject(s) => {
                self.by_subject
                    .entry(s.clone())
                    .or_default()
                    .insert(key.clone());
            }
            _ => {
                self.general.insert(key.clone());
            }
        }
        let group = Group {
            after: park.after,
            interest: park.interest.clone(),
            members: 0,
            wake: Arc::default(),
            due: false,
        };
        self.groups.insert(key.clone(), group);
        key
    }

    fn remove(&mut self, key: &Arc<str>) -> Option<Group> {
        let group = self.groups.remove(key)?;
        match &group.interest {
            Interest::Subject(s) => {
                if let Some(set) = self.by_subject.get_mut(s) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_subject.remove(s);
                    }
                }
            }
            _ => {
                self.general.remove(key);
            }
        }
        Some(group)
    }
}

impl Wake {
    /// Whether it was fired for events the component may have missed rather than for
    /// one that matched (then the next park need not check again).
    pub fn was_stale(&self) -> bool {
        self.stale.load(Relaxed)
    }
}

impl Ticket {
    /// Waits until the group is woken, and gives its wake-up.
    pub async fn woken(&self) -> &Arc<Wake> {
        let mut fired = self.wake.fired.subscribe();
        // The sender lives in `self.wake`, so this only returns once fired.
        let _ = fired.wait_for(|f| *f).await;
        &self.wake
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.lot.parked.fetch_sub(1, Relaxed);
        let mut lot = self.lot.lot.lock().unwrap_or_else(|e| e.into_inner());
        let Some(group) = lot.groups.get_mut(&self.key) else {
            return; // woken: the group already left the lot
        };
        if !Arc::ptr_eq(&group.wake, &self.wake) {
            return; // woken, and a new group of the same requests parked since
        }
        group.members -= 1;
        if group.members == 0 {
            lot.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests;
