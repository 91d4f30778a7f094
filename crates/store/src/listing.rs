//! Answering a task listing by walking one index (or, sorted by name, the name
//! indexes in order), checking each entry against its record, and stopping at `limit`
//! tasks or after [`MAX_EXAMINED`] entries, whichever comes first. The work is
//! proportional to what is returned (plus what the post-filters reject, bounded), never
//! to what is stored.

use vigil_core::keys;
use vigil_core::task::Task;

use crate::index;
use crate::kv::{Kv, Result};
use crate::pos::{Key, Pos};
use crate::query::{self, Cursor, Filters, Sort};
use crate::scan::Scanner;
use crate::sets;
use crate::verify::{self, Verdict};

/// Most index entries one listing checks against their records. A listing whose
/// filters no index answers (e.g. `search`) stops here with fewer than `limit` tasks
/// and a cursor to continue: about 2 000 record reads, ~20 ms.
pub const MAX_EXAMINED: usize = 2_000;
/// Deepest `offset`; deeper pages continue with the cursor instead.
pub const MAX_OFFSET: usize = 10_000;

/// A listing request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Which tasks.
    pub filters: Filters,
    /// In which order.
    pub sort: Sort,
    /// How many at most.
    pub limit: usize,
    /// Matching tasks to skip first (at most [`MAX_OFFSET`]).
    pub offset: usize,
    /// Continue after this task instead (from a previous answer's `next`).
    pub cursor: Option<Cursor>,
}

/// A listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// The tasks, in order.
    pub tasks: Vec<Task>,
    /// Tasks matching the filters: exact when an index counter answers the filters, or
    /// when the walk saw every match; otherwise an upper bound.
    pub total: u64,
    /// Whether `total` is exact.
    pub total_exact: bool,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
}

struct Walk<'r> {
    req: &'r Request,
    out: Vec<Task>,
    to_skip: usize,
    matched: usize,
    examined: usize,
    last: Option<(Option<String>, Pos)>,
}

/// Answers `req`.
pub fn list<K: Kv>(kv: &K, req: &Request) -> Result<Listing> {
    let (candidate, upper) = query::pick(kv, &req.filters)?;
    let counted = candidate.covers_all && !req.filters.has_residual();
    let mut w = Walk {
        req,
        out: Vec::new(),
        to_skip: req.offset.min(MAX_OFFSET),
        matched: 0,
        examined: 0,
        last: None,
    };
    let exhausted = match req.sort.field.as_str() {
        "state_at" => w.state_at(kv, &candidate.index, counted)?,
        "name" => w.by_name(kv)?,
        field => w.by_field(kv, field)?,
    };
    let seen_all = exhausted && req.cursor.is_none();
    let next = (!exhausted).then(|| w.cursor()).flatten();
    Ok(Listing {
        tasks: w.out,
        total: if seen_all {
            w.matched as u64
        } else {
            upper.max(0) as u64
        },
        total_exact: counted || seen_all,
        next,
    })
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.req.limit || self.examined >= MAX_EXAMINED
    }

    fn start(&self, name: Option<&str>) -> Option<Pos> {
        let c = self.req.cursor.as_ref()?;
        (c.name.as_deref() == name).then(|| c.pos())
    }

    fn cursor(&self) -> Option<Cursor> {
        let (name, pos) = self.last.clone()?;
        let Key::Num(key) = pos.key else { return None };
        Some(Cursor {
            sort: self.req.sort.clone(),
            name,
            key,
            id: pos.id,
        })
    }

    /// Default order: the chosen index; `received_after` ends a newest-first walk early
    /// (a task's `state_at` is never before its `received_at`).
    fn state_at<K: Kv>(&mut self, kv: &K, index: &str, exact: bool) -> Result<bool> {
        let after = self.req.filters.received_after;
        let desc = self.req.sort.desc;
        let stop = move |p: &Pos| desc && after.is_some_and(|a| p.key < Key::Num(a));
        self.walk(kv, index, None, self.start(None), &stop, exact)
    }

    /// Another time field: `by/{field}`; `received_*` bound the walk on `received_at`.
    fn by_field<K: Kv>(&mut self, kv: &K, field: &str) -> Result<bool> {
        let f = &self.req.filters;
        let (lo, hi) = if field == "received_at" {
            (f.received_after, f.received_before)
        } else {
            (None, None)
        };
        let desc = self.req.sort.desc;
        // Starting after `(x, "")` takes every id at key `x` ascending (ids are not
        // empty) and none at `x` descending: `received_after` is inclusive, `before` not.
        let edge = if desc { hi } else { lo };
        let from = self
            .start(None)
            .or_else(|| edge.map(|x| Pos::new(Key::Num(x), "")));
        let stop = move |p: &Pos| {
            let k = &p.key;
            if desc {
                lo.is_some_and(|l| *k < Key::Num(l))
            } else {
                hi.is_some_and(|h| *k >= Key::Num(h))
            }
        };
        self.walk(kv, &sets::sorted_by(field), None, from, &stop, false)
    }

    /// Name order: each task name's index in turn (the names in use are registered).
    fn by_name<K: Kv>(&mut self, kv: &K) -> Result<bool> {
        let mut names = match &self.req.filters.name {
            Some(n) => vec![n.clone()],
            None => crate::registry::names(kv, keys::TASK_NAMES)?,
        };
        if self.req.sort.desc {
            names.reverse();
        }
        let from = self.req.cursor.as_ref().and_then(|c| c.name.clone());
        let desc = self.req.sort.desc;
        let skip = names
            .iter()
            .take_while(|n| {
                from.as_ref()
                    .is_some_and(|f| if desc { *n > f } else { *n < f })
            })
            .count();
        for n in &names[skip..] {
            let exhausted = self.walk(
                kv,
                &sets::name(n),
                Some(n),
                self.start(Some(n)),
                &|_| false,
                false,
            )?;
            if !exhausted {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Walk<'_> {
    /// Walks one index from `from`, until full or `stop`; whether it reached the end.
    fn walk<K: Kv>(
        &mut self,
        kv: &K,
        index: &str,
        name: Option<&str>,
        from: Option<Pos>,
        stop: &dyn Fn(&Pos) -> bool,
        exact: bool,
    ) -> Result<bool> {
        let mut scan = Scanner::open(kv, index, self.req.sort.desc, from)?;
        if exact && self.to_skip > 0 {
            let skipped = scan.take(self.to_skip)?;
            self.matched += skipped.len();
            self.to_skip = 0;
            self.last = skipped
                .last()
                .map(|e| (name.map(String::from), e.pos.clone()));
        }
        let mut stale = Vec::new();
        let exhausted = loop {
            if self.full() {
                break false;
            }
            let mut chunk = scan.take(self.chunk(exact))?;
            let stopped = chunk.iter().position(|e| stop(&e.pos));
            if let Some(cut) = stopped {
                chunk.truncate(cut);
            }
            if chunk.is_empty() {
                break true;
            }
            self.check(kv, index, name, &chunk, &mut stale)?;
            if stopped.is_some() && !self.full() {
                break true;
            }
        };
        // Cleaning is a courtesy to later readers: a failure here must not fail the read.
        let _ = index::apply(kv, index, stale);
        Ok(exhausted)
    }

    /// How many entries to read next: what is still wanted (and a little slack for stale
    /// ones), more when filters are checked on records; never past the budget.
    fn chunk(&self, exact: bool) -> usize {
        let need = self.req.limit - self.out.len() + self.to_skip;
        let want = if exact {
            need + 2
        } else {
            (need * 2).clamp(32, 256)
        };
        want.min(MAX_EXAMINED - self.examined)
    }

    /// Checks `chunk`'s entries against their records (one `get_many`), taking the valid
    /// matching ones and noting the stale ones for cleaning.
    fn check<K: Kv>(
        &mut self,
        kv: &K,
        index: &str,
        name: Option<&str>,
        chunk: &[crate::pos::Entry],
        stale: &mut Vec<index::Op>,
    ) -> Result<()> {
        let records = verify::records(kv, chunk)?;
        for (e, r) in chunk.iter().zip(&records) {
            if self.full() {
                break;
            }
            self.examined += 1;
            self.last = Some((name.map(String::from), e.pos.clone()));
            match verify::verdict(index, e, r.as_ref()) {
                Verdict::Valid => self.take(r.as_ref().and_then(|s| s.task.as_ref())),
                Verdict::Stale => stale.push(verify::cleanup(e, r.as_ref())),
                Verdict::InFlight => {}
            }
        }
        Ok(())
    }

    fn take(&mut self, task: Option<&Task>) {
        let Some(t) = task.filter(|t| self.req.filters.matches(t)) else {
            return;
        };
        self.matched += 1;
        if self.to_skip > 0 {
            self.to_skip -= 1;
        } else {
            self.out.push(t.clone());
        }
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
