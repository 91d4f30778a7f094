//! Reading an ordered index in either direction from any position, a few pages at a
//! time: the directory is read once (of a large index, its root, then each chunk the
//! walk reaches), then only the pages the caller walks through.
//! Each directory slot is read for the range the directory gives it, following
//! `Split`/`Merged` markers, so entries are returned once each, in order, even while
//! writers split and merge pages.

use std::collections::VecDeque;

use vigil_core::keys;

use crate::codec::{decode_node, Node, Root};
use crate::dir::{chunk_at, read_root};
use crate::index::MAX_HOPS;
use crate::kv::{Kv, KvError, Result};
use crate::pos::{in_range, Bound, Entry, Pos};

/// Pages read per round trip at first; doubled each round up to [`MAX_PREFETCH`].
const FIRST_PREFETCH: usize = 2;
/// Most pages read per round trip (deep offsets walk many pages).
const MAX_PREFETCH: usize = 16;

/// A walk over an index.
pub struct Scanner<'a, K: Kv> {
    kv: &'a K,
    index: String,
    /// `(lo, hi, page)` in walking order.
    slots: VecDeque<(Bound, Bound, u64)>,
    /// Of a large index, the directory chunks not read yet: `(lo, hi, chunk)` in
    /// walking order.
    chunks: VecDeque<(Bound, Bound, u64)>,
    desc: bool,
    after: Option<Pos>,
    buf: VecDeque<Entry>,
    prefetch: usize,
    pages_read: usize,
}

impl<'a, K: Kv> Scanner<'a, K> {
    /// Starts a walk of `index`, descending or ascending, strictly after `after`.
    pub fn open(kv: &'a K, index: &str, desc: bool, after: Option<Pos>) -> Result<Self> {
        let root = read_root(kv, index)?;
        let mut s = Self {
            kv,
            index: index.to_owned(),
            slots: VecDeque::new(),
            chunks: VecDeque::new(),
            desc,
            after,
            buf: VecDeque::new(),
            prefetch: FIRST_PREFETCH,
            pages_read: 0,
        };
        match root {
            Root::Pages(dir) => s.slots = s.wanted(&dir.pages, &None),
            Root::Chunks(chunks) => s.chunks = s.wanted(&chunks, &None),
        }
        Ok(s)
    }

    /// `(lo, hi, id)` of each of `list`'s slots (the last one ending at `end`) that can
    /// hold entries after the start, in walking order.
    fn wanted(&self, list: &[(Bound, u64)], end: &Bound) -> VecDeque<(Bound, Bound, u64)> {
        let mut out = VecDeque::new();
        for (i, (lo, id)) in list.iter().enumerate() {
            let hi = list
                .get(i + 1)
                .map_or_else(|| end.clone(), |(b, _)| b.clone());
            // Descending, a slot starting at or above `after` holds nothing below it;
            // ascending, a slot ending at or below `after` holds nothing above it.
            let wanted = self.after.as_ref().is_none_or(|a| {
                if self.desc {
                    lo.as_ref().is_none_or(|l| l < a)
                } else {
                    hi.as_ref().is_none_or(|h| h > a)
                }
            });
            if wanted {
                out.push_back((lo.clone(), hi, *id));
            }
        }
        if self.desc {
            out = out.into_iter().rev().collect();
        }
        out
    }

    /// Reads the next directory chunk's slots; `false` when none is left.
    fn next_chunk(&mut self) -> Result<bool> {
        let Some((lo, hi, id)) = self.chunks.pop_front() else {
            return Ok(false);
        };
        let key = keys::index_chunk(&self.index, id);
        let list = chunk_at(&key, self.kv.get(&key)?, lo)?;
        self.slots = self.wanted(&list, &hi);
        Ok(true)
    }

    /// Pages read so far (for tests and bounds).
    pub fn pages_read(&self) -> usize {
        self.pages_read
    }

    /// The next entry, or `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        while self.buf.is_empty() {
            if self.slots.is_empty() {
                if !self.next_chunk()? {
                    return Ok(None);
                }
                continue;
            }
            self.fill()?;
        }
        Ok(self.buf.pop_front())
    }

    /// Up to `n` next entries.
    pub fn take(&mut self, n: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(n.min(1024));
        while out.len() < n {
            match self.next_entry()? {
                Some(e) => out.push(e),
                None => break,
            }
        }
        Ok(out)
    }

    /// Reads the next few slots' pages with one `get_many`.
    fn fill(&mut self) -> Result<()> {
        let n = self.prefetch.min(self.slots.len());
        self.prefetch = (self.prefetch * 2).min(MAX_PREFETCH);
        let batch: Vec<(Bound, Bound, u64)> = self.slots.drain(..n).collect();
        let keys: Vec<String> = batch
            .iter()
            .map(|(_, _, p)| keys::index_page(&self.index, *p))
            .collect();
        let values = self.kv.get_many(&keys)?;
        self.pages_read += keys.len();
        for ((lo, hi, _), (key, value)) in batch.iter().zip(keys.iter().zip(values)) {
            let mut found = Vec::new();
            if let Some(bytes) = value {
                self.resolve(decode_node(key, &bytes)?, lo, hi, &mut found, 0)?;
            }
            self.push(found);
        }
        Ok(())
    }

    /// The entries of `node` in `[lo, hi)`, following markers.
    fn resolve(
        &mut self,
        node: Node,
        lo: &Bound,
        hi: &Bound,
        out: &mut Vec<Entry>,
        hops: usize,
    ) -> Result<()> {
        if hops > MAX_HOPS {
            return Err(KvError::Corrupt {
                key: keys::index_dir(&self.index),
                why: format!("more than {MAX_HOPS} page markers in a row"),
            });
        }
        match node {
            Node::Leaf { entries, .. } => {
                out.extend(entries.into_iter().filter(|e| in_range(&e.pos, lo, hi)));
            }
            Node::Merged(left) => self.follow(left, lo, hi, out, hops)?,
            Node::Split(pieces) => {
                for (i, (plo, page)) in pieces.iter().enumerate() {
                    let phi = pieces.get(i + 1).and_then(|(b, _)| b.clone());
                    let (l, h) = (max_bound(lo, plo), min_hi(hi, &phi));
                    if l.as_ref().zip(h.as_ref()).is_none_or(|(l, h)| l < h) {
                        self.follow(*page, &l, &h, out, hops)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn follow(
        &mut self,
        page: u64,
        lo: &Bound,
        hi: &Bound,
        out: &mut Vec<Entry>,
        hops: usize,
    ) -> Result<()> {
        let key = keys::index_page(&self.index, page);
        self.pages_read += 1;
        if let Some(bytes) = self.kv.get(&key)? {
            self.resolve(decode_node(&key, &bytes)?, lo, hi, out, hops + 1)?;
        }
        Ok(())
    }

    /// Queues one slot's entries in walking order, skipping those not after the start.
    fn push(&mut self, mut found: Vec<Entry>) {
        found.sort_by(|a, b| a.pos.cmp(&b.pos));
        found.dedup_by(|a, b| a.pos == b.pos);
        if self.desc {
            found.reverse();
        }
        let after = self.after.clone();
        let desc = self.desc;
        self.buf.extend(found.into_iter().filter(|e| {
            after
                .as_ref()
                .is_none_or(|a| if desc { e.pos < *a } else { e.pos > *a })
        }));
    }
}

fn max_bound(a: &Bound, b: &Bound) -> Bound {
    match (a, b) {
        (None, x) | (x, None) => x.clone(),
        (Some(x), Some(y)) => Some(x.max(y).clone()),
    }
}

/// The lower of two upper bounds (`None`: unbounded).
fn min_hi(a: &Bound, b: &Bound) -> Bound {
    match (a, b) {
        (None, x) | (x, None) => x.clone(),
        (Some(x), Some(y)) => Some(x.min(y).clone()),
    }
}
