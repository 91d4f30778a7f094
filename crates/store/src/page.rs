//! What happens inside one page of an index: applying a batch of changes to its sorted
//! entries, and cutting an overflowing page into pieces with their lower bounds.

use crate::index::{Op, HEAD_FILL, PAGE_MAX};
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

/// Cuts an overflowing page into pieces with their lower bounds. The top page keeps
/// [`HEAD_FILL`] entries per lower piece (appends continue above); others split evenly.
pub(crate) fn cut(lo: Bound, entries: Vec<Entry>, top: bool) -> Vec<(Bound, Vec<Entry>)> {
    let n = entries.len();
    let size = if top {
        HEAD_FILL
    } else {
        n.div_ceil(n.div_ceil(PAGE_MAX / 2))
    };
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
