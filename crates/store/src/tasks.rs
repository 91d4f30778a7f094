//! Writing task records so that concurrent writers end as if their events had been
//! applied one by one: each record is read with a compare-and-swap handle, every event
//! of the batch for it applied in memory, and swapped once; a writer that loses the
//! race re-reads and re-applies. Index entries a new version needs are added *before*
//! its swap (so a task is never missing from an index), and those the old version had
//! are removed after it; a crash in between leaves stale entries, which readers skip
//! (see [`crate::verify`]).

use std::collections::BTreeMap;

use vigil_core::keys;
use vigil_core::task::Task;

use crate::dir;
use crate::index::{self, Op};
use crate::kv::{Kv, KvError, Result, MAX_CAS_RETRIES};
use crate::pos::{Entry, Pos};
use crate::record::Stored;
use crate::sets;

/// What a batch makes of a task: a new version (with the version of the task's history
/// it was computed from, 0 if none), or `None`: nothing to change.
pub type Next = Option<(Task, u64)>;

/// Computes a task's [`Next`] from its id and its current record.
pub type ApplyFn<'f> = dyn FnMut(&str, Option<&Stored>) -> Next + 'f;

/// A task about to be written: what was read, and what applying the batch made of it.
pub struct Planned<C> {
    /// Task id.
    pub id: String,
    cas: C,
    /// The record as read.
    pub before: Option<Stored>,
    /// The task with the batch applied (`None`: leave it as it is).
    pub after: Next,
}

/// The tasks a batch changes, read and applied in memory, nothing written yet.
pub struct Plan<C> {
    /// Tasks to write.
    pub tasks: Vec<Planned<C>>,
    /// Ids whose records expired: their events are not applied.
    pub expired: Vec<String>,
}

/// One task as committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The task before the batch, if Vigil knew it.
    pub before: Option<Task>,
    /// The task now.
    pub after: Task,
    /// The record as written (`None`: the batch changed nothing).
    pub stored: Option<Stored>,
}

/// Reads `id` for a compare-and-swap.
fn load<K: Kv>(kv: &K, id: &str) -> Result<(K::Cas, Option<Stored>)> {
    let key = keys::task(id);
    let (cas, bytes) = kv.cas(&key)?;
    let stored = bytes.map(|b| Stored::decode(&key, &b)).transpose()?;
    Ok((cas, stored))
}

/// Reads the tasks `ids` and applies the batch to each (`apply(id, current record)`).
pub fn prepare<K: Kv>(kv: &K, ids: &[String], apply: &mut ApplyFn<'_>) -> Result<Plan<K::Cas>> {
    let mut plan = Plan {
        tasks: Vec::with_capacity(ids.len()),
        expired: Vec::new(),
    };
    for id in ids {
        let (cas, before) = load(kv, id)?;
        if before.as_ref().is_some_and(|s| s.expired.is_some()) {
            plan.expired.push(id.clone());
            continue;
        }
        let after = apply(id, before.as_ref());
        plan.tasks.push(Planned {
            id: id.clone(),
            cas,
            before,
            after,
        });
    }
    Ok(plan)
}

/// Writes the plan: index entries, records (re-applying on conflict), then old entries
/// removed and counters moved. `now` (seconds) stamps tasks that just finished.
pub fn commit<K: Kv>(
    kv: &K,
    plan: Plan<K::Cas>,
    now: f64,
    apply: &mut ApplyFn<'_>,
) -> Result<Vec<Change>> {
    let mut pending = plan.tasks;
    let mut done: Vec<(Option<Stored>, Stored)> = Vec::new();
    let mut unchanged: Vec<Change> = Vec::new();
    for _ in 0..MAX_CAS_RETRIES {
        let lost = round(kv, pending, now, &mut done, &mut unchanged)?;
        if lost.is_empty() {
            finish(kv, &done)?;
            let changes = done.into_iter().map(|(before, next)| Change {
                before: before.and_then(|s| s.task),
                after: next.task.clone().unwrap_or_else(|| Task::new("")),
                stored: Some(next),
            });
            return Ok(changes.chain(unchanged).collect());
        }
        pending = prepare(kv, &lost, apply)?.tasks;
    }
    Err(KvError::Contention("task records".into()))
}

/// One attempt at writing `pending`: index entries added, then each record swapped.
/// Returns the ids whose swap lost to another writer.
fn round<K: Kv>(
    kv: &K,
    pending: Vec<Planned<K::Cas>>,
    now: f64,
    done: &mut Vec<(Option<Stored>, Stored)>,
    unchanged: &mut Vec<Change>,
) -> Result<Vec<String>> {
    let mut writes = Vec::new();
    for mut p in pending {
        let current = p.before.as_ref().and_then(|s| s.task.as_ref());
        match p.after.take() {
            Some((task, hist)) if current != Some(&task) => {
                let next = next_record(p.before.as_ref(), task, hist, now);
                writes.push((p, next));
            }
            _ => unchanged.extend(current.map(|t| Change {
                before: Some(t.clone()),
                after: t.clone(),
                stored: None,
            })),
        }
    }
    let adding = writes
        .iter()
        .flat_map(|(p, next)| adds(p.before.as_ref(), next));
    apply_ops(kv, adding)?;
    let mut lost = Vec::new();
    for (p, next) in writes {
        if kv.swap(p.cas, &next.encode())? {
            done.push((p.before, next));
        } else {
            lost.push(p.id);
        }
    }
    Ok(lost)
}

/// The record that replaces `before` with `task`.
fn next_record(before: Option<&Stored>, task: Task, hist: u64, now: f64) -> Stored {
    let rev = before.map_or(0, |s| s.rev) + 1;
    let done_at = task
        .state
        .is_terminal()
        .then(|| before.and_then(|s| s.done_at).unwrap_or(now));
    Stored {
        hist,
        ..Stored::live(rev, task, done_at)
    }
}

fn entries_of(s: Option<&Stored>) -> BTreeMap<String, crate::pos::Key> {
    s.and_then(|s| Some(sets::entries(s.task.as_ref()?, s.done_at)))
        .unwrap_or_default()
}

/// Index entries `next` has and `before` had not, at `next`'s revision.
fn adds(before: Option<&Stored>, next: &Stored) -> Vec<(String, Op)> {
    let (old, new) = (entries_of(before), entries_of(Some(next)));
    let id = next.task.as_ref().map_or("", |t| t.id.as_str());
    new.into_iter()
        .filter(|(set, key)| old.get(set) != Some(key))
        .map(|(set, key)| {
            let entry = Entry {
                pos: Pos::new(key, id),
                rev: next.rev,
            };
            (set, Op::Add(entry))
        })
        .collect()
}

/// Index entries `before` had and `next` has not, removed unless rewritten since.
pub(crate) fn removes(before: Option<&Stored>, next: Option<&Stored>) -> Vec<(String, Op)> {
    let (old, new) = (entries_of(before), entries_of(next));
    let Some(b) = before else { return Vec::new() };
    let id = b.task.as_ref().map_or("", |t| t.id.as_str());
    old.into_iter()
        .filter(|(set, key)| new.get(set) != Some(key))
        .map(|(set, key)| {
            let pos = Pos::new(key, id);
            (
                set,
                Op::Remove {
                    pos,
                    max_rev: b.rev,
                },
            )
        })
        .collect()
}

/// Applies index operations: the directories of every touched index read in one round
/// trip (a new task touches seven; large ones take one more for their chunks), then one
/// [`index::apply_with`] per index.
pub(crate) fn apply_ops<K: Kv>(kv: &K, ops: impl IntoIterator<Item = (String, Op)>) -> Result<()> {
    let mut by_index: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for (set, op) in ops {
        by_index.entry(set).or_default().push(op);
    }
    if by_index.is_empty() {
        return Ok(());
    }
    let wanted: Vec<(&str, Vec<&Pos>)> = by_index
        .iter()
        .map(|(set, ops)| (set.as_str(), ops.iter().map(Op::pos).collect()))
        .collect();
    let views = dir::read_views(kv, &wanted)?;
    for ((set, ops), view) in by_index.into_iter().zip(&views) {
        index::apply_with(kv, &set, view, ops)?;
    }
    Ok(())
}

fn view(s: &Stored) -> Option<(&Task, Option<f64>)> {
    s.task.as_ref().map(|t| (t, s.done_at))
}

/// After the swaps: old entries out, counters and registries up to date.
fn finish<K: Kv>(kv: &K, done: &[(Option<Stored>, Stored)]) -> Result<()> {
    apply_ops(
        kv,
        done.iter().flat_map(|(b, n)| removes(b.as_ref(), Some(n))),
    )?;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for (b, n) in done {
        for (k, v) in sets::delta(b.as_ref().and_then(view), view(n)) {
            *counts.entry(k).or_default() += v;
        }
    }
    for (k, v) in counts.into_iter().filter(|(_, v)| *v != 0) {
        kv.increment(&k, v)?;
    }
    let tasks: Vec<(Option<&Task>, &Task)> = done
        .iter()
        .filter_map(|(b, n)| Some((b.as_ref().and_then(|s| s.task.as_ref()), n.task.as_ref()?)))
        .collect();
    crate::aggregate::record_finishes(kv, &tasks)?;
    crate::registry::note_tasks(kv, tasks.iter().map(|(_, t)| *t))
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
