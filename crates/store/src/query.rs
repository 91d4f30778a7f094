//! What a task listing asks for, and which index answers it.
//!
//! Equality filters (`state`, `queue`, `worker`, `name`, `owner`, jobs only) pick an
//! index: one that covers all of them if there is one (`q/{queue}/{STATE}`,
//! `o/{owner}/{STATE}`, `j/{owner}`, or a single-filter index), otherwise the smallest
//! candidate by its counter, with the other filters checked on each record. Sorting by
//! another field than `state_at` walks `by/{field}` (or, for `name`, the `n/{name}`
//! indexes in name order) and checks every filter on the records.

use serde::{Deserialize, Serialize};
use vigil_core::keys;
use vigil_core::task::{Task, TaskState};

use crate::kv::{Kv, Result};
use crate::pos::{Key, Pos};
use crate::sets;

/// Filters of a listing; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// State.
    pub state: Option<TaskState>,
    /// Queue.
    pub queue: Option<String>,
    /// Worker hostname.
    pub worker: Option<String>,
    /// Task name.
    pub name: Option<String>,
    /// Owner (viewers always filter by themselves).
    pub owner: Option<String>,
    /// Jobs only.
    pub jobs: bool,
    /// Case-insensitive text in id, name, args, kwargs, result or exception (lowercase).
    pub search: Option<String>,
    /// `received_at` at or after, seconds.
    pub received_after: Option<f64>,
    /// `received_at` before, seconds.
    pub received_before: Option<f64>,
}

impl Filters {
    /// Whether `t` passes every filter.
    pub fn matches(&self, t: &Task) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.state.is_none_or(|s| t.state == s)
            && eq(&self.queue, &t.queue)
            && eq(&self.worker, &t.worker)
            && eq(&self.name, &t.name)
            && eq(&self.owner, &t.owner)
            && (!self.jobs || sets::is_job(t))
            && self
                .received_after
                .is_none_or(|a| t.received_at.is_some_and(|r| r >= a))
            && self
                .received_before
                .is_none_or(|b| t.received_at.is_some_and(|r| r < b))
            && self.search.as_ref().is_none_or(|s| matches_search(t, s))
    }

    /// Filters no index answers: checked on records only.
    pub fn has_residual(&self) -> bool {
        self.search.is_some() || self.received_after.is_some() || self.received_before.is_some()
    }
}

fn matches_search(t: &Task, needle: &str) -> bool {
    let text = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string().to_lowercase());
    [
        Some(t.id.to_lowercase()),
        t.name.as_ref().map(|s| s.to_lowercase()),
        text(&t.args),
        text(&t.kwargs),
        text(&t.result),
        t.exception.as_ref().map(|s| s.to_lowercase()),
    ]
    .into_iter()
    .flatten()
    .any(|h| h.contains(needle))
}

/// The order of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// One of [`sets::SORT_FIELDS`].
    pub field: String,
    /// Newest (largest) first.
    pub desc: bool,
}

/// An index able to answer a filter set, and how many of the filters it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The index (a set name).
    pub index: String,
    /// It holds exactly the tasks matching every equality filter.
    pub covers_all: bool,
}

/// The `state_at` indexes that can answer `f`: the first covers all equality filters
/// if any index does.
pub fn candidates(f: &Filters) -> Vec<Candidate> {
    let n_eq = [
        f.state.is_some(),
        f.queue.is_some(),
        f.worker.is_some(),
        f.name.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count()
        + usize::from(f.owner.is_some())
        + usize::from(f.jobs);
    let mut out: Vec<(String, usize)> = Vec::new();
    if f.jobs {
        match &f.owner {
            Some(o) => out.push((sets::owner_jobs(o), 2)),
            None => out.push((sets::JOBS.into(), 1)),
        }
    }
    if let (Some(q), Some(s)) = (&f.queue, f.state) {
        out.push((sets::queue_state(q, s), 2));
    }
    if let (Some(o), Some(s)) = (&f.owner, f.state) {
        out.push((sets::owner_state(o, s), 2));
    }
    out.extend(f.state.map(|s| (sets::state(s), 1)));
    out.extend(f.queue.as_deref().map(|q| (sets::queue(q), 1)));
    out.extend(f.worker.as_deref().map(|w| (sets::worker(w), 1)));
    out.extend(f.owner.as_deref().map(|o| (sets::owner(o), 1)));
    out.extend(f.name.as_deref().map(|n| (sets::name(n), 1)));
    if out.is_empty() {
        out.push((sets::ALL.into(), 0));
    }
    out.sort_by_key(|(_, covered)| std::cmp::Reverse(*covered));
    out.into_iter()
        .map(|(index, covered)| Candidate {
            index,
            covers_all: covered == n_eq,
        })
        .collect()
}

/// The index to walk for `f` in `state_at` order: one covering every equality filter,
/// else the smallest candidate. Also returns its count (upper bound of the matches).
pub fn pick<K: Kv>(kv: &K, f: &Filters) -> Result<(Candidate, i64)> {
    let all = candidates(f);
    if all[0].covers_all {
        let n = kv.increment(&keys::count(&all[0].index), 0)?;
        return Ok((all[0].clone(), n));
    }
    let counts = kv.counters(
        &all.iter()
            .map(|c| keys::count(&c.index))
            .collect::<Vec<_>>(),
    )?;
    let best = (0..all.len()).min_by_key(|i| counts[*i]).unwrap_or(0);
    Ok((all[best].clone(), counts[best]))
}

/// Where a listing continues: after a task, in a given order (opaque to clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The order it belongs to.
    #[serde(rename = "s")]
    pub sort: Sort,
    /// For `name` order: the name being walked.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sort key (numeric: every walked index is keyed by a time or runtime).
    #[serde(rename = "k")]
    pub key: f64,
    /// The task id.
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    /// The position it names.
    pub fn pos(&self) -> Pos {
        Pos::new(Key::Num(self.key), self.id.clone())
    }

    /// The cursor as a URL-safe string.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor; `None` if it is not one.
    pub fn decode(s: &str) -> Option<Self> {
        use base64::Engine;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_covering_index_comes_first() {
        let f = Filters {
            state: Some(TaskState::Received),
            queue: Some("premium".into()),
            ..Filters::default()
        };
        let c = candidates(&f);
        assert_eq!(
            (c[0].index.as_str(), c[0].covers_all),
            ("q/premium/RECEIVED", true)
        );
        let f = Filters {
            state: Some(TaskState::Received),
            worker: Some("w".into()),
            ..Filters::default()
        };
        assert!(candidates(&f).iter().all(|c| !c.covers_all));
        assert_eq!(candidates(&Filters::default())[0].index, "all");
        let jobs = Filters {
            jobs: true,
            owner: Some("bob".into()),
            ..Filters::default()
        };
        assert_eq!(
            candidates(&jobs)[0],
            Candidate {
                index: "j/bob".into(),
                covers_all: true
            }
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            sort: Sort {
                field: "state_at".into(),
                desc: true,
            },
            name: None,
            key: 1732300000.5,
            id: "7f1c".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
    }
}
