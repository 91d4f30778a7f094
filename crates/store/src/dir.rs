//! An index's directory: its live pages by the lower bound of their range. A small
//! index keeps the whole list at the directory key. Past [`CHUNK_MAX`] pages the list is
//! cut into chunks under keys of their own, and the directory key holds only the
//! chunks' bounds (a root): a writer reads the root and the chunks its changes fall in,
//! a few KiB whatever the index's size, where it read every page's bound (a new task
//! touches seven indexes; at 420 000 tasks that made a single-event ingest cost twice
//! its CPU on an empty store, and more as the store grew).
//!
//! The directory is a shortcut (see [`crate::index`]): pages carry markers, so a stale
//! list still leads to every entry, and a writer that meets a marker folds it back in.
//! Chunks keep it so. A chunk is replaced by new chunks the root names and is never
//! deleted, so whoever holds an older root reads a stale list, not a missing one; an
//! edit lost to a racing cut is repeated by the next writer that meets its marker. A
//! chunk's first page is never merged away, so chunk boundaries stay page boundaries.

use vigil_core::keys;

use crate::codec::{decode_chunk, decode_root, encode_chunk, encode_root, Dir, Root};
use crate::kv::{Kv, KvError, Result, MAX_CAS_RETRIES};
use crate::page::piece_size;
use crate::pos::{route, Bound, Pos};

/// Most pages a list holds (the directory key's own, or a chunk's) before it is cut:
/// ~1.2 KiB (a bound is mostly its sort key alone, ~19 bytes a page), covering ~14 000
/// entries. A million-entry index has a root of ~80 chunks.
pub const CHUNK_MAX: usize = 64;

/// One list of pages a writer routes through: a small index's whole directory, or one
/// chunk of a large one.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Lower bound of its range (for a chunk, the root's bound).
    pub lo: Bound,
    /// `None`: the directory key's own list; else the chunk's id.
    pub chunk: Option<u64>,
    /// `(lower bound, page)`, sorted.
    pub pages: Vec<(Bound, u64)>,
    /// Whether its range reaches the top of the index.
    pub last: bool,
}

/// What a writer read of an index's directory: the parts holding the positions it was
/// read for, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The parts.
    pub parts: Vec<Part>,
}

impl View {
    /// The part holding `p` (which must be one of the positions the view was read for).
    pub fn part_of(&self, p: &Pos) -> usize {
        self.parts
            .iter()
            .rposition(|part| part.lo.as_ref().is_none_or(|lo| lo <= p))
            .unwrap_or(0)
    }
}

/// A change to a list of pages, found while changing pages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Edit {
    /// The page split into these pieces.
    Replace(u64, Vec<(Bound, u64)>),
    /// The page merged into its left neighbour.
    Remove(u64),
}

/// The directory key's value (a missing one is a new index: one page, id 0).
fn root_at(key: &str, bytes: Option<Vec<u8>>) -> Result<Root> {
    bytes.map_or_else(|| Ok(Root::Pages(Dir::default())), |b| decode_root(key, &b))
}

/// Reads what an index's directory key holds.
pub(crate) fn read_root<K: Kv>(kv: &K, index: &str) -> Result<Root> {
    let key = keys::index_dir(index);
    root_at(&key, kv.get(&key)?)
}

/// The pages of the chunk stored at `key`, whose range starts at `lo` (its root
/// bound). A chunk the root names is never deleted: a missing one is corrupt.
pub(crate) fn chunk_at(key: &str, bytes: Option<Vec<u8>>, lo: Bound) -> Result<Vec<(Bound, u64)>> {
    let bytes = bytes.ok_or_else(|| KvError::Corrupt {
        key: key.to_owned(),
        why: "a directory chunk the root names is missing".into(),
    })?;
    let mut pages = decode_chunk(key, &bytes)?;
    pages[0].0 = lo;
    Ok(pages)
}

/// Reads an index's whole directory: every live page, in order (walks read a large
/// one chunk by chunk instead: [`crate::scan`]).
#[cfg(test)]
pub(crate) fn read_dir<K: Kv>(kv: &K, index: &str) -> Result<Dir> {
    let chunks = match read_root(kv, index)? {
        Root::Pages(dir) => return Ok(dir),
        Root::Chunks(chunks) => chunks,
    };
    let keys: Vec<String> = chunks
        .iter()
        .map(|(_, id)| keys::index_chunk(index, *id))
        .collect();
    let mut pages = Vec::new();
    for (((lo, _), key), value) in chunks.into_iter().zip(&keys).zip(kv.get_many(&keys)?) {
        pages.extend(chunk_at(key, value, lo)?);
    }
    Ok(Dir { pages })
}

/// For each `(index, positions)`, the parts of its directory holding those positions:
/// every directory key in one round trip, the chunks they lead to in one more.
pub fn read_views<K: Kv>(kv: &K, wanted: &[(&str, Vec<&Pos>)]) -> Result<Vec<View>> {
    let keys: Vec<String> = wanted.iter().map(|(i, _)| keys::index_dir(i)).collect();
    let mut views = Vec::with_capacity(wanted.len());
    // Chunks to read: (which view, lower bound, id, last).
    let mut need: Vec<(usize, Bound, u64, bool)> = Vec::new();
    for (n, (bytes, key)) in kv.get_many(&keys)?.into_iter().zip(&keys).enumerate() {
        let chunks = match root_at(key, bytes)? {
            Root::Pages(dir) => {
                views.push(View {
                    parts: vec![Part {
                        lo: None,
                        chunk: None,
                        pages: dir.pages,
                        last: true,
                    }],
                });
                continue;
            }
            Root::Chunks(chunks) => chunks,
        };
        views.push(View { parts: Vec::new() });
        let mut slots: Vec<usize> = wanted[n].1.iter().map(|p| route(&chunks, p)).collect();
        slots.sort_unstable();
        slots.dedup();
        for s in slots {
            let (lo, id) = chunks[s].clone();
            need.push((n, lo, id, s + 1 == chunks.len()));
        }
    }
    let chunk_keys: Vec<String> = need
        .iter()
        .map(|(n, _, id, _)| keys::index_chunk(wanted[*n].0, *id))
        .collect();
    if chunk_keys.is_empty() {
        return Ok(views);
    }
    let values = kv.get_many(&chunk_keys)?;
    for ((n, lo, id, last), (key, value)) in need.into_iter().zip(chunk_keys.iter().zip(values)) {
        views[n].parts.push(Part {
            pages: chunk_at(key, value, lo.clone())?,
            lo,
            chunk: Some(id),
            last,
        });
    }
    Ok(views)
}

/// Folds structural changes found through `part` into the directory (idempotent: a
/// change already there, or superseded, is skipped), cutting a list grown past
/// [`CHUNK_MAX`].
pub(crate) fn fold<K: Kv>(kv: &K, index: &str, part: &Part, edits: &[Edit]) -> Result<()> {
    if edits.is_empty() {
        return Ok(());
    }
    match part.chunk {
        None => fold_root(kv, index, edits),
        Some(id) => fold_chunk(kv, index, id, part, edits),
    }
}

/// Edits a small index's directory; past [`CHUNK_MAX`] pages it becomes a root.
fn fold_root<K: Kv>(kv: &K, index: &str, edits: &[Edit]) -> Result<()> {
    let key = keys::index_dir(index);
    for _ in 0..MAX_CAS_RETRIES {
        let (cas, cur) = kv.cas(&key)?;
        let mut pages = match root_at(&key, cur)? {
            Root::Pages(dir) => dir.pages,
            // Cut into chunks since this writer read it: its edits were shortcuts, and
            // the next writer through their markers makes them again.
            Root::Chunks(_) => return Ok(()),
        };
        if !apply_edits(&mut pages, edits) {
            return Ok(());
        }
        if pages.len() <= CHUNK_MAX {
            if kv.swap(cas, &encode_root(&Root::Pages(Dir { pages })))? {
                return Ok(());
            }
            continue;
        }
        let chunks = write_chunks(kv, index, cut(pages, true))?;
        if kv.swap(cas, &encode_root(&Root::Chunks(chunks.clone())))? {
            return Ok(());
        }
        delete_chunks(kv, index, &chunks)?;
    }
    Err(KvError::Contention(key))
}

/// Edits chunk `id` (of `part`); past [`CHUNK_MAX`] pages its pieces take its place in
/// the root.
fn fold_chunk<K: Kv>(kv: &K, index: &str, id: u64, part: &Part, edits: &[Edit]) -> Result<()> {
    let key = keys::index_chunk(index, id);
    for _ in 0..MAX_CAS_RETRIES {
        let (cas, cur) = kv.cas(&key)?;
        let mut pages = chunk_at(&key, cur, part.lo.clone())?;
        if !apply_edits(&mut pages, edits) {
            return Ok(());
        }
        if pages.len() <= CHUNK_MAX {
            if kv.swap(cas, &encode_chunk(&pages))? {
                return Ok(());
            }
            continue;
        }
        // The old chunk stays as it was: a stale list for whoever holds the old root.
        let pieces = write_chunks(kv, index, cut(pages, part.last))?;
        if !replace_in_root(kv, index, id, &pieces)? {
            delete_chunks(kv, index, &pieces)?;
        }
        return Ok(());
    }
    Err(KvError::Contention(key))
}

/// Names `pieces` in the root in place of chunk `id`; `false` if the root no longer
/// names it (another writer cut it first).
fn replace_in_root<K: Kv>(kv: &K, index: &str, id: u64, pieces: &[(Bound, u64)]) -> Result<bool> {
    let key = keys::index_dir(index);
    for _ in 0..MAX_CAS_RETRIES {
        let (cas, cur) = kv.cas(&key)?;
        let Root::Chunks(mut chunks) = root_at(&key, cur)? else {
            return Ok(false);
        };
        let Some(at) = chunks.iter().position(|(_, c)| *c == id) else {
            return Ok(false);
        };
        let mut with = pieces.to_vec();
        with[0].0 = chunks[at].0.clone();
        chunks.splice(at..=at, with);
        if kv.swap(cas, &encode_root(&Root::Chunks(chunks)))? {
            return Ok(true);
        }
    }
    Err(KvError::Contention(key))
}

/// Cuts an overflowing list into pieces, as pages are cut ([`piece_size`]).
fn cut(pages: Vec<(Bound, u64)>, top: bool) -> Vec<Vec<(Bound, u64)>> {
    let size = piece_size(pages.len(), CHUNK_MAX, top);
    pages.chunks(size).map(<[_]>::to_vec).collect()
}

/// Writes each piece as a new chunk: `(its lower bound, its id)`.
fn write_chunks<K: Kv>(
    kv: &K,
    index: &str,
    pieces: Vec<Vec<(Bound, u64)>>,
) -> Result<Vec<(Bound, u64)>> {
    let mut named = Vec::with_capacity(pieces.len());
    let mut writes = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let id = kv.random();
        writes.push((keys::index_chunk(index, id), encode_chunk(&piece)));
        named.push((piece[0].0.clone(), id));
    }
    kv.set_many(&writes)?;
    Ok(named)
}

fn delete_chunks<K: Kv>(kv: &K, index: &str, chunks: &[(Bound, u64)]) -> Result<()> {
    let keys: Vec<String> = chunks
        .iter()
        .map(|(_, id)| keys::index_chunk(index, *id))
        .collect();
    kv.delete_many(&keys)
}

fn apply_edits(pages: &mut Vec<(Bound, u64)>, edits: &[Edit]) -> bool {
    let mut changed = false;
    for e in edits {
        changed |= edit(pages, e);
    }
    changed
}

fn edit(pages: &mut Vec<(Bound, u64)>, e: &Edit) -> bool {
    let (Edit::Replace(id, _) | Edit::Remove(id)) = e;
    let Some(at) = pages.iter().position(|(_, p)| p == id) else {
        return false;
    };
    match e {
        Edit::Replace(_, pieces) => {
            let lo = pages[at].0.clone();
            let mut with = pieces.clone();
            if let Some(first) = with.first_mut() {
                first.0 = lo;
            }
            let last = with.last().and_then(|(b, _)| b.clone());
            let end = at + with.len();
            pages.splice(at..=at, with);
            // A piece reaching past the next bounds holds entries of pages that merged
            // into the split page: those pages are gone, drop them to keep the order.
            while pages.get(end).is_some_and(|(b, _)| *b <= last) {
                pages.remove(end);
            }
        }
        // A list's first page keeps the list's lower bound: it is never removed.
        Edit::Remove(_) if at == 0 => return false,
        Edit::Remove(_) => {
            pages.remove(at);
        }
    }
    true
}
