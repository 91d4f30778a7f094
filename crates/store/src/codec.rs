//! The stored form of index pages and directories: a compact binary encoding, because
//! a directory of a million-entry index holds thousands of page bounds and is read on
//! every listing and every ingest batch.
//!
//! ```text
//! value  := VERSION (dir | root | chunk | node)
//! dir    := 'D' count (bound page-id)*      every page of a small index
//! root   := 'R' count (bound chunk-id)*     a large index: its chunks of pages
//! chunk  := 'C' count (bound page-id)*      the pages of one chunk, from its root bound
//! node   := 'L' bound count (pos rev)*      a page of entries, from `bound` up
//!         | 'S' count (bound page-id)*      split: replaced by these pages
//!         | 'M' page-id                     emptied: merged into the page on its left
//! bound  := 0 | 1 pos                       0 is minus infinity
//! pos    := key id
//! key    := 'n' f64-big-endian | 't' text
//! id     := text;   text := varint-length bytes;   count, rev := varint;   page-id := u64 LE
//! ```

use crate::kv::{KvError, Result};
use crate::page::Slot;
use crate::pos::{Bound, Entry, Key, KeyRef, Pos, PosRef};

const VERSION: u8 = 1;

/// A page of an index.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Entries in order; the page holds positions from `lo` up to the next page's bound.
    Leaf {
        /// Lower bound of the page's range.
        lo: Bound,
        /// The entries, sorted by position.
        entries: Vec<Entry>,
    },
    /// The page was split: its range now lives in these pages (sorted by bound).
    Split(Vec<(Bound, u64)>),
    /// The page emptied and its range joined the page on its left, `u64`.
    Merged(u64),
}

/// An index's directory: every live page with the lower bound of its range, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Dir {
    /// `(lower bound, page id)`; the first bound is always minus infinity.
    pub pages: Vec<(Bound, u64)>,
}

impl Default for Dir {
    /// A new index: one page, id 0, holding everything. Being fixed, two writers that
    /// start the same index at once agree on it without writing a directory at all.
    fn default() -> Self {
        Self {
            pages: vec![(None, 0)],
        }
    }
}

/// What an index's directory key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// Every live page (a small index).
    Pages(Dir),
    /// The chunks the page list is cut into: `(lower bound, chunk id)`, sorted, the first
    /// bound minus infinity.
    Chunks(Vec<(Bound, u64)>),
}

/// Encodes a directory key's value.
pub fn encode_root(root: &Root) -> Vec<u8> {
    match root {
        Root::Pages(dir) => tagged(b'D', &dir.pages),
        Root::Chunks(chunks) => tagged(b'R', chunks),
    }
}

/// Encodes one chunk of a large directory: its pages, from the chunk's root bound up.
pub fn encode_chunk(pages: &[(Bound, u64)]) -> Vec<u8> {
    tagged(b'C', pages)
}

fn tagged(kind: u8, list: &[(Bound, u64)]) -> Vec<u8> {
    let mut out = vec![VERSION, kind];
    slots(&mut out, list);
    out
}

/// Encodes a page.
pub fn encode_node(node: &Node) -> Vec<u8> {
    let mut out = vec![VERSION];
    match node {
        Node::Leaf { lo, entries } => {
            out.push(b'L');
            bound(&mut out, lo);
            varint(&mut out, entries.len() as u64);
            for e in entries {
                pos(&mut out, &e.pos);
                varint(&mut out, e.rev);
            }
        }
        Node::Split(to) => {
            out.push(b'S');
            slots(&mut out, to);
        }
        Node::Merged(into) => {
            out.push(b'M');
            out.extend_from_slice(&into.to_le_bytes());
        }
    }
    out
}

fn slots(out: &mut Vec<u8>, pages: &[(Bound, u64)]) {
    varint(out, pages.len() as u64);
    for (lo, id) in pages {
        bound(out, lo);
        out.extend_from_slice(&id.to_le_bytes());
    }
}

fn bound(out: &mut Vec<u8>, b: &Bound) {
    match b {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            pos(out, p);
        }
    }
}

fn pos(out: &mut Vec<u8>, p: &Pos) {
    match &p.key {
        Key::Num(x) => {
            out.push(b'n');
            out.extend_from_slice(&x.to_be_bytes());
        }
        Key::Text(s) => {
            out.push(b't');
            text(out, s);
        }
    }
    text(out, &p.id);
}

fn text(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Decodes a directory key's value.
pub fn decode_root(key: &str, bytes: &[u8]) -> Result<Root> {
    let mut r = Reader { key, bytes, at: 0 };
    if r.byte()? != VERSION {
        return Err(r.corrupt("unknown format version"));
    }
    let kind = r.byte()?;
    if kind != b'D' && kind != b'R' {
        return Err(r.corrupt("not an index directory"));
    }
    let list = r.slots()?;
    if list.first().is_none_or(|(lo, _)| lo.is_some()) {
        return Err(r.corrupt("a directory must start with an unbounded slot"));
    }
    Ok(match kind {
        b'D' => Root::Pages(Dir { pages: list }),
        _ => Root::Chunks(list),
    })
}

/// Decodes a chunk stored at `key`: its pages, at least one.
pub fn decode_chunk(key: &str, bytes: &[u8]) -> Result<Vec<(Bound, u64)>> {
    let mut r = Reader { key, bytes, at: 0 };
    r.header(b'C')?;
    let pages = r.slots()?;
    if pages.is_empty() {
        return Err(r.corrupt("an empty chunk"));
    }
    Ok(pages)
}

/// Decodes a page stored at `key`.
pub fn decode_node(key: &str, bytes: &[u8]) -> Result<Node> {
    let mut r = Reader { key, bytes, at: 0 };
    if r.byte()? != VERSION {
        return Err(r.corrupt("unknown format version"));
    }
    match r.byte()? {
        b'L' => {
            let lo = r.bound()?;
            let n = r.count()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(Entry {
                    pos: r.pos()?,
                    rev: r.varint()?,
                });
            }
            Ok(Node::Leaf { lo, entries })
        }
        b'S' => Ok(Node::Split(r.slots()?)),
        b'M' => Ok(Node::Merged(r.u64()?)),
        _ => Err(r.corrupt("unknown page kind")),
    }
}

/// A leaf page read in place: the entries' positions borrowed from the stored bytes.
/// An ingest changes a few entries of each page it touches; changing them here and
/// copying the rest as bytes costs a fraction of decoding and re-encoding every entry
/// (index pages were 15% of a single-event ingest's CPU).
pub(crate) struct Leaf<'a> {
    /// Version, kind and lower bound, as stored.
    head: &'a [u8],
    /// The entries, in order.
    pub(crate) items: Vec<Item<'a>>,
}

/// An entry of a [`Leaf`]: as stored (its position's bytes, and its revision), or added.
pub(crate) enum Item<'a> {
    /// From the stored page.
    Stored {
        /// Its position, borrowed.
        pos: PosRef<'a>,
        /// The position's encoded bytes.
        bytes: &'a [u8],
        /// Its revision (changed when a newer one is added).
        rev: u64,
    },
    /// Added by a change.
    New {
        /// Its position.
        pos: &'a Pos,
        /// Its revision.
        rev: u64,
    },
}

impl<'a> Item<'a> {
    /// The item an added entry is.
    pub fn new(e: &'a Entry) -> Self {
        Item::New {
            pos: &e.pos,
            rev: e.rev,
        }
    }
}

impl Slot for Item<'_> {
    fn pos(&self) -> PosRef<'_> {
        match self {
            Item::Stored { pos, .. } => *pos,
            Item::New { pos, .. } => pos.as_ref(),
        }
    }
    fn rev(&self) -> u64 {
        match self {
            Item::Stored { rev, .. } | Item::New { rev, .. } => *rev,
        }
    }
    fn set_rev(&mut self, to: u64) {
        match self {
            Item::Stored { rev, .. } | Item::New { rev, .. } => *rev = to,
        }
    }
}

/// Reads the page stored at `key` in place, if it is a leaf (`None`: a marker).
pub(crate) fn read_leaf<'a>(key: &'a str, bytes: &'a [u8]) -> Result<Option<Leaf<'a>>> {
    let mut r = Reader { key, bytes, at: 0 };
    if r.byte()? != VERSION {
        return Err(r.corrupt("unknown format version"));
    }
    if r.byte()? != b'L' {
        return Ok(None);
    }
    if r.byte()? == 1 {
        r.pos_ref()?;
    }
    let head = &bytes[..r.at];
    let n = r.count()?;
    let mut items = Vec::with_capacity(n + 1);
    for _ in 0..n {
        let start = r.at;
        let pos = r.pos_ref()?;
        let bytes = &bytes[start..r.at];
        items.push(Item::Stored {
            pos,
            bytes,
            rev: r.varint()?,
        });
    }
    Ok(Some(Leaf { head, items }))
}

impl Leaf<'_> {
    /// The page's bytes: the same as [`encode_node`] of its decoded form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 48 * self.items.len());
        out.extend_from_slice(self.head);
        varint(&mut out, self.items.len() as u64);
        for item in &self.items {
            match item {
                Item::Stored { bytes, rev, .. } => {
                    out.extend_from_slice(bytes);
                    varint(&mut out, *rev);
                }
                Item::New { pos: p, rev } => {
                    pos(&mut out, p);
                    varint(&mut out, *rev);
                }
            }
        }
        out
    }
}

struct Reader<'a> {
    key: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, why: &str) -> KvError {
        KvError::Corrupt {
            key: self.key.to_owned(),
            why: format!("{why} (at byte {})", self.at),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.corrupt("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn header(&mut self, kind: u8) -> Result<()> {
        if self.byte()? != VERSION || self.byte()? != kind {
            return Err(self.corrupt("not an index directory chunk"));
        }
        Ok(())
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    fn count(&mut self) -> Result<usize> {
        let n = self.varint()? as usize;
        // Every item takes at least one byte: a larger count is corruption, not a reason
        // to allocate.
        if n > self.bytes.len() {
            return Err(self.corrupt("count larger than the value"));
        }
        Ok(n)
    }

    fn text(&mut self) -> Result<String> {
        let n = self.count()?;
        let b = self.take(n)?.to_vec();
        String::from_utf8(b).map_err(|_| self.corrupt("text is not UTF-8"))
    }

    fn pos(&mut self) -> Result<Pos> {
        let key = match self.byte()? {
            b'n' => Key::Num(f64::from_be_bytes(
                self.take(8)?.try_into().unwrap_or_default(),
            )),
            b't' => Key::Text(self.text()?),
            _ => return Err(self.corrupt("unknown key kind")),
        };
        Ok(Pos {
            key,
            id: self.text()?,
        })
    }

    /// A position, borrowed from the bytes (texts unchecked: see [`KeyRef`]).
    fn pos_ref(&mut self) -> Result<PosRef<'a>> {
        let key = match self.byte()? {
            b'n' => KeyRef::Num(f64::from_be_bytes(
                self.take(8)?.try_into().unwrap_or_default(),
            )),
            b't' => KeyRef::Text(self.bytes_ref()?),
            _ => return Err(self.corrupt("unknown key kind")),
        };
        Ok((key, self.bytes_ref()?))
    }

    /// A text's bytes, borrowed.
    fn bytes_ref(&mut self) -> Result<&'a [u8]> {
        let n = self.count()?;
        self.take(n)
    }

    fn bound(&mut self) -> Result<Bound> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.pos()?)),
            _ => Err(self.corrupt("bad bound")),
        }
    }

    fn slots(&mut self) -> Result<Vec<(Bound, u64)>> {
        let n = self.count()?;
        (0..n).map(|_| Ok((self.bound()?, self.u64()?))).collect()
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
