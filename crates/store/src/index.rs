//! Writing an ordered index: a directory listing pages by the lower bound of their
//! range ([`crate::dir`]), and pages of at most [`PAGE_MAX`] entries, each changed by
//! compare-and-swap.
//!
//! A batch of changes costs one swap per touched page. A page that overflows is
//! **split**: its pieces are written under fresh keys, then the page itself is swapped
//! to a `Split` marker naming them, then the directory is updated. A page that empties
//! is **merged**: swapped to a `Merged` marker naming its left neighbour, then removed
//! from the directory. Markers stay, so a writer or reader holding an older directory
//! follows them to where the range lives now; the directory is only a shortcut, and any
//! writer that meets a marker through it repairs it. So concurrent writers never lose an
//! entry, whatever the interleaving, and a crash between the steps leaves a detour, not
//! a loss.

use std::collections::BTreeMap;

use vigil_core::keys;

use crate::codec::{decode_node, encode_node, read_leaf, Item, Node};
use crate::dir::{self, Edit, Part, View};
use crate::kv::{Kv, KvError, Result, MAX_CAS_RETRIES};
use crate::page::{cut, merge};
use crate::pos::{route, Bound, Entry, Pos};

/// Most entries a page holds. A listing of 50 reads one or two pages; an ingest batch
/// rewrites the pages it touches, so pages stay small (~12 KiB with uuid ids), and a
/// million-entry index has ~4 500 pages (its directory cut into chunks: [`crate::dir`]).
pub const PAGE_MAX: usize = 256;
/// Entries the lower piece keeps when the highest page splits. New entries mostly
/// arrive at the top (newest timestamps), so the pages left behind stay 7/8 full.
pub const HEAD_FILL: usize = crate::page::head_fill(PAGE_MAX);
/// Longest chain of `Split`/`Merged` markers followed before giving up (each one is a
/// structural change not yet folded into the directory; a handful at most).
pub const MAX_HOPS: usize = 32;

/// One change to an index.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert the entry (an entry already there keeps the higher revision).
    Add(Entry),
    /// Remove the entry at `pos` if its revision is at most `max_rev`: a newer writer's
    /// entry at the same position is not touched.
    Remove {
        /// Where.
        pos: Pos,
        /// Highest revision removed.
        max_rev: u64,
    },
}

impl Op {
    pub(crate) fn pos(&self) -> &Pos {
        match self {
            Op::Add(e) => &e.pos,
            Op::Remove { pos, .. } => pos,
        }
    }
}

/// Applies `ops` to `index`: one compare-and-swap per touched page.
pub fn apply<K: Kv>(kv: &K, index: &str, ops: Vec<Op>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let positions = ops.iter().map(Op::pos).collect();
    let view = dir::read_views(kv, &[(index, positions)])?.remove(0);
    apply_with(kv, index, &view, ops)
}

/// [`apply`] with the parts of the index's directory holding the ops' positions already
/// read ([`dir::read_views`]); they may be stale: the markers they lead to are followed,
/// as for any reader.
pub fn apply_with<K: Kv>(kv: &K, index: &str, view: &View, ops: Vec<Op>) -> Result<()> {
    let mut by_part: BTreeMap<usize, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_part.entry(view.part_of(op.pos())).or_default().push(op);
    }
    for (n, ops) in by_part {
        let part = &view.parts[n];
        let mut w = Writer {
            kv,
            index,
            part,
            edits: Vec::new(),
        };
        let top = part.pages.last().filter(|_| part.last).map(|(_, id)| *id);
        for (page, ops) in group(&part.pages, ops) {
            w.page(page, ops, Some(page) == top, 0)?;
        }
        dir::fold(kv, index, part, &w.edits)?;
    }
    Ok(())
}

/// Sorts `ops` into the slots that hold their positions.
fn group(slots: &[(Bound, u64)], mut ops: Vec<Op>) -> BTreeMap<u64, Vec<Op>> {
    ops.sort_by(|a, b| a.pos().cmp(b.pos()));
    let mut out: BTreeMap<u64, Vec<Op>> = BTreeMap::new();
    for op in ops {
        let page = slots[route(slots, op.pos())].1;
        out.entry(page).or_default().push(op);
    }
    out
}

struct Writer<'a, K> {
    kv: &'a K,
    index: &'a str,
    /// The list of pages the ops were routed through.
    part: &'a Part,
    edits: Vec<Edit>,
}

impl<K: Kv> Writer<'_, K> {
    /// Applies `ops` to page `id`, following markers; `top`: no page above it.
    fn page(&mut self, id: u64, ops: Vec<Op>, top: bool, hops: usize) -> Result<()> {
        if hops > MAX_HOPS {
            return Err(self.too_deep());
        }
        let key = keys::index_page(self.index, id);
        for _ in 0..MAX_CAS_RETRIES {
            let (cas, bytes) = self.kv.cas(&key)?;
            // The common case: a leaf that neither splits nor empties, changed in place.
            if let Some(b) = &bytes {
                if let Some(mut leaf) = read_leaf(&key, b)? {
                    if !merge(&mut leaf.items, &ops, Item::new) {
                        return Ok(());
                    }
                    if (1..=PAGE_MAX).contains(&leaf.items.len()) {
                        if self.kv.swap(cas, &leaf.encode())? {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            let node = match bytes {
                Some(b) => decode_node(&key, &b)?,
                None => Node::Leaf {
                    lo: None,
                    entries: Vec::new(),
                },
            };
            let (lo, mut entries) = match node {
                Node::Leaf { lo, entries } => (lo, entries),
                Node::Split(pieces) => return self.forward_split(id, pieces, ops, hops),
                Node::Merged(left) => {
                    self.edits.push(Edit::Remove(id));
                    return self.page(left, ops, false, hops + 1);
                }
            };
            if !merge(&mut entries, &ops, Entry::clone) {
                return Ok(());
            }
            if self.store(cas, id, lo, entries, top)? {
                return Ok(());
            }
        }
        Err(KvError::Contention(key))
    }

    fn forward_split(
        &mut self,
        id: u64,
        pieces: Vec<(Bound, u64)>,
        ops: Vec<Op>,
        hops: usize,
    ) -> Result<()> {
        self.edits.push(Edit::Replace(id, pieces.clone()));
        for (page, ops) in group(&pieces, ops) {
            self.page(page, ops, false, hops + 1)?;
        }
        Ok(())
    }

    /// Writes the changed page: as it is, split, or merged away. `false`: lost a race.
    fn store(
        &mut self,
        cas: K::Cas,
        id: u64,
        lo: Bound,
        entries: Vec<Entry>,
        top: bool,
    ) -> Result<bool> {
        if entries.len() > PAGE_MAX {
            return self.split(cas, id, lo, entries, top);
        }
        if entries.is_empty() {
            if let Some(left) = self.left_of(id, &lo) {
                let won = self.kv.swap(cas, &encode_node(&Node::Merged(left)))?;
                if won {
                    self.edits.push(Edit::Remove(id));
                }
                return Ok(won);
            }
        }
        self.kv.swap(cas, &encode_node(&Node::Leaf { lo, entries }))
    }

    /// The page an emptied page merges into: its left neighbour in the directory. Only a
    /// page the directory lists (and that has a lower bound) is merged away, so markers
    /// always point to a lower range or to fresh pieces and never form a cycle.
    fn left_of(&self, id: u64, lo: &Bound) -> Option<u64> {
        let lo = lo.as_ref()?;
        let pages = &self.part.pages;
        let at = pages.iter().position(|(_, p)| *p == id)?;
        (at > 0 && pages[at].0.as_ref() == Some(lo)).then(|| pages[at - 1].1)
    }

    fn split(
        &mut self,
        cas: K::Cas,
        id: u64,
        lo: Bound,
        entries: Vec<Entry>,
        top: bool,
    ) -> Result<bool> {
        let pieces = cut(lo, entries, top);
        let named: Vec<(String, Bound, u64, Vec<u8>)> = pieces
            .into_iter()
            .map(|(lo, entries)| {
                let page = self.kv.random();
                let bytes = encode_node(&Node::Leaf {
                    lo: lo.clone(),
                    entries,
                });
                (keys::index_page(self.index, page), lo, page, bytes)
            })
            .collect();
        let writes: Vec<(String, Vec<u8>)> = named
            .iter()
            .map(|(k, _, _, b)| (k.clone(), b.clone()))
            .collect();
        self.kv.set_many(&writes)?;
        let to: Vec<(Bound, u64)> = named.iter().map(|(_, lo, p, _)| (lo.clone(), *p)).collect();
        if self.kv.swap(cas, &encode_node(&Node::Split(to.clone())))? {
            self.edits.push(Edit::Replace(id, to));
            return Ok(true);
        }
        let orphans: Vec<String> = named.into_iter().map(|(k, ..)| k).collect();
        self.kv.delete_many(&orphans)?;
        Ok(false)
    }

    fn too_deep(&self) -> KvError {
        KvError::Corrupt {
            key: keys::index_dir(self.index),
            why: format!("more than {MAX_HOPS} page markers in a row"),
        }
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
