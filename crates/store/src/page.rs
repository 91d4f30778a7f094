//! What happens inside one page of an index: applying a batch of changes to its sorted
//! entries, and cutting an overflowing page into pieces with their lower bounds.

use crate::index::{Op, PAGE_MAX};
use crate::pos::{Bound, Entry, Pos, PosRef};

/// An entry of a page as [`merge`] sees it: decoded, or still in the stored bytes.
pub(crate) trait Slot {
    fn pos(&self) -> PosRef<'_>;
    fn rev(&self) -> u64;
    fn set_rev(&mut self, rev: u64);
}

impl Slot for Entry {
    fn pos(&self) -> PosRef<'_> {
        self.pos.as_ref()
    }
    fn rev(&self) -> u64 {
        self.rev
    }
    fn set_rev(&mut self, rev: u64) {
        self.rev = rev;
    }
}

/// Applies sorted `ops` to sorted `entries` (`new` makes the entry an `Add` inserts);
/// whether anything changed.
pub(crate) fn merge<'o, S: Slot>(
    entries: &mut Vec<S>,
    ops: &'o [Op],
    new: impl Fn(&'o Entry) -> S,
) -> bool {
    let mut changed = false;
    for op in ops {
        let found = entries.binary_search_by(|e| e.pos().cmp(&op.pos().as_ref()));
        match (op, found) {
            (Op::Add(e), Ok(i)) if entries[i].rev() < e.rev => {
                entries[i].set_rev(e.rev);
                changed = true;
            }
            (Op::Add(e), Err(i)) => {
                entries.insert(i, new(e));
                changed = true;
            }
            (Op::Remove { max_rev, .. }, Ok(i)) if entries[i].rev() <= *max_rev => {
                entries.remove(i);
                changed = true;
            }
            _ => {}
        }
    }
    changed
}

/// How many items each piece of an overflowing list of `n` (at most `max` a list) gets,
/// for pages and directory chunks alike: the highest list keeps [`head_fill`] per lower
/// piece (appends continue above, so what is left behind stays 7/8 full); others split
/// evenly into pieces of about half.
pub(crate) fn piece_size(n: usize, max: usize, top: bool) -> usize {
    if top {
        head_fill(max)
    } else {
        n.div_ceil(n.div_ceil(max / 2))
    }
}

/// What the lower piece keeps when the highest list of at most `max` is cut.
pub const fn head_fill(max: usize) -> usize {
    max * 7 / 8
}

/// Cuts an overflowing page into pieces with their lower bounds ([`piece_size`]).
pub(crate) fn cut(lo: Bound, entries: Vec<Entry>, top: bool) -> Vec<(Bound, Vec<Entry>)> {
    let size = piece_size(entries.len(), PAGE_MAX, top);
    let mut pieces: Vec<(Bound, Vec<Entry>)> = Vec::new();
    let mut rest = entries.into_iter().peekable();
    let mut prev: Option<Pos> = None;
    while rest.peek().is_some() {
        let chunk: Vec<Entry> = rest.by_ref().take(size).collect();
        let bound = match &prev {
            None => lo.clone(),
            Some(p) => Some(separator(p, &chunk[0].pos)),
        };
        prev = chunk.last().map(|e| e.pos.clone());
        pieces.push((bound, chunk));
    }
    pieces
}

/// The shortest bound above `below` and at or under `at`: the key alone when it differs.
fn separator(below: &Pos, at: &Pos) -> Pos {
    if below.key < at.key {
        Pos::new(at.key.clone(), "")
    } else {
        at.clone()
    }
}
