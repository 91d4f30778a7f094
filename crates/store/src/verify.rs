//! Checking index entries against the records they point to. An entry is shown only if
//! the record still puts the task at that place in that index. An entry that does not
//! match is either **in flight** — written for a revision newer than the record, by a
//! writer that has not swapped the record yet — and kept, or **stale** — left by a
//! writer that lost a race or stopped half-way — and removed (only if nobody rewrote it
//! since: the removal is conditional on the revision).

use vigil_core::keys;

use crate::index::Op;
use crate::kv::{Kv, Result};
use crate::pos::Entry;
use crate::record::Stored;
use crate::sets;

/// What an index entry is worth, given its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The record agrees: show it.
    Valid,
    /// Written for a newer revision than the record's: skip it, keep it.
    InFlight,
    /// The record moved on: skip it and clean it.
    Stale,
}

/// Judges `entry` of `index` against its record (`None`: no record).
pub fn verdict(index: &str, entry: &Entry, record: Option<&Stored>) -> Verdict {
    let agrees = record
        .and_then(|s| Some(sets::entries(s.task.as_ref()?, s.done_at)))
        .is_some_and(|e| e.get(index) == Some(&entry.pos.key));
    let rev = record.map_or(0, |s| s.rev);
    if agrees {
        Verdict::Valid
    } else if entry.rev > rev {
        Verdict::InFlight
    } else {
        Verdict::Stale
    }
}

/// The records of `entries`' tasks, with one `get_many`.
pub fn records<K: Kv>(kv: &K, entries: &[Entry]) -> Result<Vec<Option<Stored>>> {
    let keys: Vec<String> = entries.iter().map(|e| keys::task(&e.pos.id)).collect();
    kv.get_many(&keys)?
        .into_iter()
        .zip(&keys)
        .map(|(bytes, key)| bytes.map(|b| Stored::decode(key, &b)).transpose())
        .collect()
}

/// The removal of a stale entry: only while nobody wrote a newer revision of it.
pub fn cleanup(entry: &Entry, record: Option<&Stored>) -> Op {
    Op::Remove {
        pos: entry.pos.clone(),
        max_rev: record.map_or(0, |s| s.rev),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pos::{Key, Pos};
    use vigil_core::task::{Task, TaskState};

    #[test]
    fn judges_by_record_and_revision() {
        let mut t = Task::new("a");
        t.state = TaskState::Started;
        t.state_at = 5.0;
        let rec = Stored::live(3, t, None);
        let at = |k: f64, rev| Entry {
            pos: Pos::new(Key::Num(k), "a"),
            rev,
        };
        assert_eq!(
            verdict("s/STARTED", &at(5.0, 2), Some(&rec)),
            Verdict::Valid
        );
        assert_eq!(
            verdict("s/RECEIVED", &at(4.0, 2), Some(&rec)),
            Verdict::Stale
        );
        assert_eq!(
            verdict("s/SUCCESS", &at(6.0, 4), Some(&rec)),
            Verdict::InFlight
        );
        assert_eq!(verdict("s/SUCCESS", &at(6.0, 1), None), Verdict::InFlight);
        let op = cleanup(&at(4.0, 2), Some(&rec));
        assert!(matches!(op, Op::Remove { max_rev: 3, .. }));
    }
}
