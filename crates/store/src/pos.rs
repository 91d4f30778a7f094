//! Positions in an ordered index: a sort key (a number such as a timestamp, or a text
//! such as a task name) and the task id that breaks ties, plus the revision of the task
//! record an entry was computed from.

use std::cmp::Ordering;

/// A sort key. One index holds one kind.
#[derive(Debug, Clone)]
pub enum Key {
    /// Times, runtimes.
    Num(f64),
    /// Names.
    Text(String),
}

impl Key {
    /// The smallest numeric key: where a task without the sorted field sorts.
    pub const MIN: Key = Key::Num(f64::MIN);

    /// The key borrowed, as a page's stored bytes hold it.
    pub fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Num(x) => KeyRef::Num(*x),
            Key::Text(s) => KeyRef::Text(s.as_bytes()),
        }
    }
}

/// A sort key borrowed from where it is stored: pages are changed in place by comparing
/// these, without decoding every entry (see [`crate::codec::read_leaf`]). Texts are
/// their UTF-8 bytes, which order as the texts do, so a page changed in place is never
/// checked for UTF-8 (a full decode, as readers do, still is).
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    /// Times, runtimes.
    Num(f64),
    /// Names, as UTF-8 bytes.
    Text(&'a [u8]),
}

/// The one order of keys: numbers (by `total_cmp`) before texts (bytewise).
impl Ord for KeyRef<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyRef::Num(a), KeyRef::Num(b)) => a.total_cmp(b),
            (KeyRef::Text(a), KeyRef::Text(b)) => a.cmp(b),
            (KeyRef::Num(_), KeyRef::Text(_)) => Ordering::Less,
            (KeyRef::Text(_), KeyRef::Num(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for KeyRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for KeyRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for KeyRef<'_> {}

/// A position borrowed, ordered as [`Pos`]: key, then id (as UTF-8 bytes).
pub type PosRef<'a> = (KeyRef<'a>, &'a [u8]);

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_ref().cmp(&other.as_ref())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

/// A place in an index: ordered by key, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// The sort key.
    pub key: Key,
    /// The task id.
    pub id: String,
}

impl Pos {
    /// A position.
    pub fn new(key: Key, id: impl Into<String>) -> Self {
        Self { key, id: id.into() }
    }

    /// The position borrowed.
    pub fn as_ref(&self) -> PosRef<'_> {
        (self.key.as_ref(), self.id.as_bytes())
    }
}

/// One index entry: a task at a position, written from revision `rev` of its record.
/// Entries are identified by their position; the revision decides whether a stale one
/// may be cleaned (see [`crate::verify`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where the task sorts.
    pub pos: Pos,
    /// Revision of the task record the entry was computed for.
    pub rev: u64,
}

/// The lower bound of a page's range: `None` is minus infinity.
pub type Bound = Option<Pos>;

/// Whether `p` lies in `[lo, hi)` (`hi` `None`: no upper bound).
pub fn in_range(p: &Pos, lo: &Bound, hi: &Bound) -> bool {
    lo.as_ref().is_none_or(|lo| lo <= p) && hi.as_ref().is_none_or(|hi| p < hi)
}

/// The slot of `slots` (sorted by lower bound, the first unbounded) that holds `p`.
pub fn route<T>(slots: &[(Bound, T)], p: &Pos) -> usize {
    slots
        .iter()
        .rposition(|(lo, _)| lo.as_ref().is_none_or(|lo| lo <= p))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(k: f64, id: &str) -> Pos {
        Pos::new(Key::Num(k), id)
    }

    #[test]
    fn positions_order_by_key_then_id() {
        assert!(pos(1.0, "b") < pos(2.0, "a"));
        assert!(pos(2.0, "a") < pos(2.0, "b"));
        assert!(Key::MIN < Key::Num(-1e300));
        assert_eq!(Key::Num(0.0), Key::Num(0.0));
        assert!(Key::Text("a".into()) < Key::Text("b".into()));
    }

    #[test]
    fn routes_to_the_last_slot_starting_at_or_before() {
        let slots = [
            (None, 'a'),
            (Some(pos(10.0, "")), 'b'),
            (Some(pos(20.0, "m")), 'c'),
        ];
        assert_eq!(route(&slots, &pos(5.0, "x")), 0);
        assert_eq!(route(&slots, &pos(10.0, "")), 1);
        assert_eq!(route(&slots, &pos(20.0, "a")), 1);
        assert_eq!(route(&slots, &pos(20.0, "m")), 2);
        assert!(in_range(&pos(10.0, "a"), &slots[1].0, &slots[2].0));
        assert!(!in_range(&pos(20.0, "m"), &slots[1].0, &slots[2].0));
    }
}
