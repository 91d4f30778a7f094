//! The key-value operations the store is built on: exactly what a Spin component has
//! through `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`), so the layout
//! works the same under Vigil's host and under `spin up` (SQLite or Redis).

/// A failed key-value operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KvError {
    /// The store did not answer or refused the operation.
    #[error("the key-value store is unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded.
    #[error("the stored value at `{key}` is unreadable: {why}")]
    Corrupt {
        /// The key.
        key: String,
        /// What was wrong with it.
        why: String,
    },
    /// Too many concurrent writers changed the same keys; the caller may retry.
    #[error("gave up on `{0}` after too many conflicting concurrent updates")]
    Contention(String),
}

/// Result of a key-value operation.
pub type Result<T> = std::result::Result<T, KvError>;

/// How often a compare-and-swap is retried on conflict before giving up with
/// [`KvError::Contention`]. Each retry re-reads the key, so only a key rewritten by other
/// writers this many times in a row, within one request, exhausts it.
pub const MAX_CAS_RETRIES: usize = 64;

/// The operations the store needs. Values are bytes; keys are strings.
///
/// Implementations: the api component's (`wasi:keyvalue` in a Spin component) and
/// [`crate::memory::MemoryKv`] (tests).
pub trait Kv {
    /// A compare-and-swap handle: remembers what [`Kv::cas`] read.
    type Cas;

    /// The value of `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The values of `keys`, in the same order (missing ones `None`).
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Sets `key`.
    fn set(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Sets several keys.
    fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<()>;
    /// Deletes `keys` (missing ones are fine).
    fn delete_many(&self, keys: &[String]) -> Result<()>;
    /// Adds `delta` to the counter at `key` (missing: 0) and returns the new value.
    /// Counters are only ever read this way (`delta` 0): backends store them differently.
    fn increment(&self, key: &str, delta: i64) -> Result<i64>;
    /// Starts a compare-and-swap on `key`: its current value and the handle to swap it.
    fn cas(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>)>;
    /// Writes `value` if the key still holds what [`Kv::cas`] read (or is still missing);
    /// `Ok(false)` if another writer changed it in between.
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool>;
    /// A random number, for naming new index pages.
    fn random(&self) -> u64;

    /// Several counters, read with `increment(key, 0)`.
    fn counters(&self, keys: &[String]) -> Result<Vec<i64>> {
        keys.iter().map(|k| self.increment(k, 0)).collect()
    }
}

/// Reads `key` with a compare-and-swap handle, lets `change` compute the new value from
/// the current one, and swaps, re-reading and re-computing on conflict. `change`
/// returning `None` means nothing to write. Returns what `change` last returned.
pub fn update<K: Kv, T>(
    kv: &K,
    key: &str,
    mut change: impl FnMut(Option<&[u8]>) -> Result<Option<(Vec<u8>, T)>>,
) -> Result<Option<T>> {
    for _ in 0..MAX_CAS_RETRIES {
        let (cas, current) = kv.cas(key)?;
        let Some((value, out)) = change(current.as_deref())? else {
            return Ok(None);
        };
        if current.as_deref() == Some(value.as_slice()) {
            // Nothing to write: the change is a no-op on what was read, and takes
            // effect there (as a read would).
            return Ok(Some(out));
        }
        if kv.swap(cas, &value)? {
            return Ok(Some(out));
        }
    }
    Err(KvError::Contention(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryKv;

    #[test]
    fn update_retries_until_it_wins() {
        let kv = MemoryKv::new();
        kv.fail_next_swaps(3);
        let n = update(&kv, "k", |cur| {
            let n = cur.map_or(0, |b| b[0]) + 1;
            Ok(Some((vec![n], n)))
        })
        .unwrap();
        assert_eq!(n, Some(1));
        assert_eq!(kv.get("k").unwrap(), Some(vec![1]));
        assert_eq!(
            update(&kv, "k", |_| Ok(None::<(Vec<u8>, ())>)).unwrap(),
            None
        );
    }

    #[test]
    fn an_update_to_the_same_bytes_writes_nothing() {
        let kv = MemoryKv::new();
        kv.set("k", b"v").unwrap();
        kv.reset_counts();
        let out = update(&kv, "k", |cur| {
            Ok(Some((cur.unwrap_or_default().to_vec(), 7)))
        });
        assert_eq!(out.unwrap(), Some(7));
        assert_eq!(kv.writes(), 0);
    }

    #[test]
    fn update_gives_up_under_endless_contention() {
        let kv = MemoryKv::new();
        kv.fail_next_swaps(MAX_CAS_RETRIES as u32);
        let r = update(&kv, "k", |_| Ok(Some((vec![1], ()))));
        assert_eq!(r, Err(KvError::Contention("k".into())));
    }
}
