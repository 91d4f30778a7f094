//! Retention: finished tasks are expired when older than a maximum age, and/or beyond a
//! maximum count, oldest first (by when Vigil recorded them finishing); live tasks never
//! expire. No timer is needed: each ingest that finishes tasks runs a bounded step, and
//! the host (or a cron job under `spin up`) calls the admin endpoint periodically.
//!
//! Expiring a task swaps its record for a small marker (so a read answers "expired by
//! the retention policy" and late events for it are ignored), deletes the task's other
//! keys ([`keys::task_keys`]: history, children), removes its index entries and takes it
//! out of every counter. Markers are forgotten after
//! [`MARKER_KEEP_SECS`], or beyond [`MAX_MARKERS`], oldest first.

use vigil_core::keys;

use crate::index::{self, Op};
use crate::kv::{update, Kv, Result};
use crate::pos::{Entry, Key, Pos};
use crate::record::{Expired, Stored};
use crate::scan::Scanner;
use crate::sets;
use crate::tasks::{apply_ops, removes};
use crate::verify::{cleanup, verdict, Verdict};

/// How long the marker of an expired task is kept, seconds: a week of "expired" answers
/// for ids a client still holds.
pub const MARKER_KEEP_SECS: f64 = 7.0 * 86_400.0;
/// Most markers kept (about 150 bytes each), whatever the age.
pub const MAX_MARKERS: i64 = 1_000_000;

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Expire finished tasks recorded finishing longer ago than this, seconds.
    pub max_age_secs: Option<f64>,
    /// Keep at most this many finished tasks.
    pub max_finished: Option<u64>,
}

/// What a step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Tasks expired.
    pub expired: Vec<String>,
    /// Markers of expired tasks forgotten.
    pub forgotten: usize,
}

/// Expires up to `budget` tasks the policy no longer keeps, and forgets up to `budget`
/// old markers.
pub fn step<K: Kv>(kv: &K, policy: &Policy, now: f64, budget: usize) -> Result<Report> {
    let finished = kv.increment(&keys::count(sets::DONE), 0)?;
    let excess = policy
        .max_finished
        .map_or(0, |m| (finished - m as i64).max(0) as usize);
    let cutoff = policy.max_age_secs.map(|a| now - a);
    let mut scan = Scanner::open(kv, sets::DONE, false, None)?;
    let mut report = Report::default();
    for examined in 0..budget * 2 {
        let Some(e) = scan.next_entry()? else { break };
        let Key::Num(done_at) = e.pos.key else { break };
        let reason = if examined < excess {
            format!(
                "only the newest {} finished tasks are kept",
                policy.max_finished.unwrap_or(0)
            )
        } else if cutoff.is_some_and(|c| done_at < c) {
            format!(
                "finished tasks are kept {} s",
                policy.max_age_secs.unwrap_or(0.0)
            )
        } else {
            break;
        };
        if expire(kv, &e, reason, now)? {
            report.expired.push(e.pos.id);
        }
        if report.expired.len() >= budget {
            break;
        }
    }
    report.forgotten = forget(kv, now, budget)?;
    Ok(report)
}

/// Expires the task of a `done` entry, if its record still says so (a stale entry is
/// cleaned instead).
fn expire<K: Kv>(kv: &K, entry: &Entry, reason: String, now: f64) -> Result<bool> {
    let key = keys::task(&entry.pos.id);
    let Key::Num(done_at) = entry.pos.key else {
        return Ok(false);
    };
    let mut stale = None;
    let swapped = update(kv, &key, |cur| {
        let before = cur.map(|b| Stored::decode(&key, b)).transpose()?;
        match verdict(sets::DONE, entry, before.as_ref()) {
            Verdict::Valid => {}
            Verdict::Stale => {
                stale = Some(cleanup(entry, before.as_ref()));
                return Ok(None);
            }
            Verdict::InFlight => return Ok(None),
        }
        let Some(before) = before else {
            return Ok(None);
        };
        let marker = marker(&before, done_at, &reason, now);
        Ok(Some((marker.encode(), (before, marker.rev))))
    })?;
    if let Some(op) = stale {
        index::apply(kv, sets::DONE, vec![op])?;
    }
    let Some((before, rev)) = swapped else {
        return Ok(false);
    };
    forget_task(kv, &entry.pos.id, &before, rev, now)?;
    Ok(true)
}

/// What an expired task leaves in place of its record.
fn marker(before: &Stored, done_at: f64, reason: &str, now: f64) -> Stored {
    Stored {
        rev: before.rev + 1,
        done_at: None,
        task: None,
        hist: before.hist,
        expired: Some(Expired {
            at: now,
            done_at,
            reason: reason.to_owned(),
            owner: before.task.as_ref().and_then(|t| t.owner.clone()),
        }),
    }
}

/// Once its record is a marker (of revision `rev`): the task's other keys (history,
/// children) deleted, its index entries removed, its counts taken back, the marker listed.
fn forget_task<K: Kv>(kv: &K, id: &str, before: &Stored, rev: u64, now: f64) -> Result<()> {
    let record = keys::task(id);
    let others: Vec<String> = keys::task_keys(id)
        .into_iter()
        .filter(|k| *k != record)
        .collect();
    kv.delete_many(&others)?;
    apply_ops(kv, removes(Some(before), None))?;
    let task = before.task.as_ref().map(|t| (t, before.done_at));
    for (k, v) in sets::delta(task, None) {
        kv.increment(&k, v)?;
    }
    let pos = Pos::new(Key::Num(now), id);
    index::apply(kv, sets::GONE, vec![Op::Add(Entry { pos, rev })])?;
    kv.increment(&keys::count(sets::GONE), 1)?;
    Ok(())
}

/// Deletes up to `budget` markers past their time or beyond [`MAX_MARKERS`].
fn forget<K: Kv>(kv: &K, now: f64, budget: usize) -> Result<usize> {
    let markers = kv.increment(&keys::count(sets::GONE), 0)?;
    let excess = (markers - MAX_MARKERS).max(0) as usize;
    let old = Scanner::open(kv, sets::GONE, false, None)?.take(budget)?;
    let due: Vec<Entry> = old
        .into_iter()
        .enumerate()
        .take_while(|(i, e)| *i < excess || e.pos.key < Key::Num(now - MARKER_KEEP_SECS))
        .map(|(_, e)| e)
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    // A marker is never rewritten (events for an expired task are ignored), so plain
    // deletes cannot lose a newer write.
    let task_keys: Vec<String> = due.iter().map(|e| keys::task(&e.pos.id)).collect();
    kv.delete_many(&task_keys)?;
    let ops = due
        .iter()
        .map(|e| Op::Remove {
            pos: e.pos.clone(),
            max_rev: e.rev,
        })
        .collect();
    index::apply(kv, sets::GONE, ops)?;
    kv.increment(&keys::count(sets::GONE), -(due.len() as i64))?;
    Ok(due.len())
}

/// Why `id` is gone, if it expired and its marker is still kept.
pub fn expired<K: Kv>(kv: &K, id: &str) -> Result<Option<Expired>> {
    let key = keys::task(id);
    Ok(match kv.get(&key)? {
        Some(b) => Stored::decode(&key, &b)?.expired,
        None => None,
    })
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
