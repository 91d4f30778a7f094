//! An in-memory [`Kv`] with the semantics Vigil's backends give (a swap on a missing
//! key succeeds only if the key is still missing), for tests: it counts the keys each
//! operation touches, can fail swaps on purpose, and can run a hook just before a swap
//! so a test can interleave another writer at that exact moment.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::kv::{Kv, KvError, Result};

/// Runs before a swap on the given key; may use the store (another writer).
pub type SwapHook = Arc<dyn Fn(&MemoryKv, &str) + Send + Sync>;

/// A store in memory. Every value carries a version so a swap sees any change.
#[derive(Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    version: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    conflicts: AtomicU64,
    /// Keys read one at a time ([`Kv::get`]) since the last reset.
    single_gets: Mutex<Vec<String>>,
    fail_swaps: AtomicU32,
    seed: AtomicU64,
    hook: Mutex<Option<SwapHook>>,
    jitter: std::sync::atomic::AtomicBool,
}

/// What [`MemoryKv::cas`] read: the key and the version (or absence) it saw.
pub struct MemoryCas {
    key: String,
    seen: Option<u64>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            seed: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
            ..Self::default()
        }
    }

    /// Yields the thread between every compare-and-swap read and its swap, so threads
    /// sharing the store interleave there as they would across processes.
    pub fn jitter(self) -> Self {
        self.jitter.store(true, Ordering::SeqCst);
        self
    }

    /// Makes the next `n` swaps fail as if another writer had won.
    pub fn fail_next_swaps(&self, n: u32) {
        self.fail_swaps.store(n, Ordering::SeqCst);
    }

    /// Runs `hook` before every swap (once per swap; the hook itself runs unhooked).
    pub fn set_swap_hook(&self, hook: Option<SwapHook>) {
        *self.map_hook() = hook;
    }

    fn map_hook(&self) -> std::sync::MutexGuard<'_, Option<SwapHook>> {
        self.hook.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Vec<u8>, u64)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keys read since the last [`MemoryKv::reset_counts`] (a `get_many` counts each key).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Keys written or deleted since the last reset.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Swaps that lost to another writer (not counting those failed on purpose).
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::SeqCst)
    }

    /// Keys read one at a time with `get` (not `get_many`) since the last reset.
    pub fn single_gets(&self) -> Vec<String> {
        self.single_gets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Zeroes the read and write counts.
    pub fn reset_counts(&self) {
        self.reads.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
        self.single_gets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn read(&self, key: &str) -> Option<Vec<u8>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.map().get(key).map(|(v, _)| v.clone())
    }

    /// Every key, in order (tests only: the store never lists keys).
    pub fn keys(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    fn put(&self, key: &str, value: &[u8]) {
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        self.map().insert(key.to_owned(), (value.to_vec(), v));
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

impl Kv for MemoryKv {
    type Cas = MemoryCas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.single_gets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key.to_owned());
        Ok(self.read(key))
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(keys.iter().map(|k| self.read(k)).collect())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.put(key, value);
        Ok(())
    }

    fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<()> {
        items.iter().for_each(|(k, v)| self.put(k, v));
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        let mut map = self.map();
        for k in keys {
            map.remove(k);
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let mut map = self.map();
        let current = match map.get(key) {
            None => 0,
            Some((v, _)) => {
                i64::from_le_bytes(v.as_slice().try_into().map_err(|_| KvError::Corrupt {
                    key: key.to_owned(),
                    why: "not a counter".into(),
                })?)
            }
        };
        let next = current + delta;
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        map.insert(key.to_owned(), (next.to_le_bytes().to_vec(), v));
        Ok(next)
    }

    fn cas(&self, key: &str) -> Result<(MemoryCas, Option<Vec<u8>>)> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let map = self.map();
        let found = map.get(key);
        let cas = MemoryCas {
            key: key.to_owned(),
            seen: found.map(|(_, v)| *v),
        };
        Ok((cas, found.map(|(v, _)| v.clone())))
    }

    fn swap(&self, cas: MemoryCas, value: &[u8]) -> Result<bool> {
        if self.jitter.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let hook = self.map_hook().take();
        if let Some(h) = &hook {
            h(self, &cas.key);
            *self.map_hook() = hook;
        }
        let failing = self
            .fail_swaps
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Ok(false);
        }
        let mut map = self.map();
        if map.get(&cas.key).map(|(_, v)| *v) != cas.seen {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
            return Ok(false);
        }
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        map.insert(cas.key, (value.to_vec(), v));
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    fn random(&self) -> u64 {
        // xorshift64*: deterministic, good enough for page names in tests.
        let mut x = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A deterministic shuffle (xorshift), so a failing interleaving reproduces.
pub fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_fails_after_a_concurrent_change_and_on_a_racing_create() {
        let kv = MemoryKv::new();
        let (cas, cur) = kv.cas("a").unwrap();
        assert_eq!(cur, None);
        kv.set("a", b"other").unwrap();
        assert!(
            !kv.swap(cas, b"mine").unwrap(),
            "creation race must be detected"
        );
        let (cas, cur) = kv.cas("a").unwrap();
        assert_eq!(cur.as_deref(), Some(&b"other"[..]));
        assert!(kv.swap(cas, b"mine").unwrap());
        assert_eq!(kv.increment("n", 5).unwrap(), 5);
        assert_eq!(kv.increment("n", -2).unwrap(), 3);
        assert_eq!(kv.counters(&["n".into(), "m".into()]).unwrap(), [3, 0]);
    }

    #[test]
    fn the_hook_runs_before_the_swap() {
        let kv = MemoryKv::new();
        kv.set_swap_hook(Some(Arc::new(|kv: &MemoryKv, key: &str| {
            kv.set(key, b"hooked").unwrap();
        })));
        let (cas, _) = kv.cas("a").unwrap();
        assert!(!kv.swap(cas, b"mine").unwrap());
        kv.set_swap_hook(None);
        assert_eq!(kv.get("a").unwrap().as_deref(), Some(&b"hooked"[..]));
    }
}
