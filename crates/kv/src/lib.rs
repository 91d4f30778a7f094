//! Vigil's key-value backends: one trait, [`KvBackend`], and one module per backend,
//! picked by the `type` of a store in Spin's `runtime-config.toml` ([`config`]), the way
//! Spin's key-value factor does it. A new backend is one new module and one arm in
//! [`Stores::open`].
//!
//! - [`sqlite`]: the embedded default, Spin's own schema (`type = "spin"`).
//! - [`redis`]: Redis, Spin's key layout (`type = "redis"`), shared by several hosts
//!   and by components run elsewhere (`spin up`).
//!
//! Nothing here knows what the keys mean: the Spin interfaces that expose the stores to
//! components live in `vigil-runtime`, the event log and its outbox in the host.
#![deny(missing_docs)]

pub mod config;
pub mod redis;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::config::StoreConfig;

/// What [`KvBackend::watch_prefix`] tells of writes under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// This key was set.
    Key(String),
    /// Writes may have gone unnoticed (the watch was just (re)established): look for
    /// yourself with [`KvBackend::scan_prefix`].
    Missed,
}

/// What a caller holds between its first operation on a store and
/// [`KvBackend::sync`]: it tells whether something the caller did may have been lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncToken(pub u64);

/// A key-value backend. Keys are strings, values bytes.
///
/// The batch and atomic operations are those of `wasi:keyvalue` (batch, atomics); each
/// backend makes `set_many` and `write_batch` all-or-nothing and `compare_and_swap`
/// atomic against every other writer of the same store, other processes included.
///
/// Every operation is visible to every later operation at once, but it is only
/// *durable* (it survives the process being killed) once [`KvBackend::sync`] has
/// returned: a backend may commit writes in groups. A caller that answers someone on
/// the strength of what it did — a request acknowledging events — takes a
/// [`KvBackend::sync_token`] before its first operation and syncs before answering.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// The value of `key`.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Sets `key`, overwriting.
    async fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()>;
    /// Deletes `key`; deleting a missing key is fine.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> anyhow::Result<bool>;
    /// Every key. Costs a scan of the whole store: never on a request's path.
    async fn get_keys(&self) -> anyhow::Result<Vec<String>>;
    /// The values of `keys`, in the same order (`None` where a key is missing).
    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<Vec<u8>>>>;
    /// Sets every pair, all or nothing.
    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        self.write_batch(pairs, Vec::new()).await
    }
    /// Deletes every key, all or nothing.
    async fn delete_many(&self, keys: Vec<String>) -> anyhow::Result<()> {
        self.write_batch(Vec::new(), keys).await
    }
    /// Adds `delta` to the counter at `key` (a missing key counts as 0) and returns the
    /// new value. The stored encoding is the backend's (as in Spin: little-endian bytes
    /// on SQLite, a decimal string on Redis), so counters are read with `increment(k, 0)`.
    async fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64>;
    /// Sets `key` to `new` only if its value is still `expected` (`None`: only if the
    /// key does not exist). Returns whether it did.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> anyhow::Result<bool>;
    /// Up to `limit` entries whose key starts with `prefix`, in key order.
    async fn scan_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<(String, Vec<u8>)>>;
    /// Sets and deletes, all or nothing.
    async fn write_batch(
        &self,
        sets: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> anyhow::Result<()>;
    /// Tells of keys under `prefix` set by any client of the store, other processes
    /// included, as they are written; `None` if the backend cannot (then the caller
    /// polls with [`KvBackend::scan_prefix`]). Starts with [`Watched::Missed`].
    fn watch_prefix(&self, _prefix: &str) -> Option<mpsc::Receiver<Watched>> {
        None
    }
    /// A token to pass to [`KvBackend::sync`]; take it before the first operation it
    /// is to cover.
    fn sync_token(&self) -> SyncToken {
        SyncToken::default()
    }
    /// Makes every operation that returned before this call durable. Fails if an
    /// operation made since `token` was taken may have been lost (its group's commit
    /// failed): the caller must not acknowledge it. Backends that make each operation
    /// durable before it returns (Redis with `appendfsync always`) have nothing to do.
    async fn sync(&self, _token: SyncToken) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The open stores, by label.
pub struct Stores {
    by_label: BTreeMap<String, Arc<dyn KvBackend>>,
}

impl Stores {
    /// Opens every configured store.
    pub async fn open(config: &BTreeMap<String, StoreConfig>) -> anyhow::Result<Self> {
        let mut by_label = BTreeMap::new();
        for (label, c) in config {
            by_label.insert(label.clone(), open(label, c).await?);
        }
        Ok(Self { by_label })
    }

    /// The store named `label`.
    pub fn get(&self, label: &str) -> Option<Arc<dyn KvBackend>> {
        self.by_label.get(label).cloned()
    }
}

/// Opens the backend `config` names for store `label`.
pub async fn open(label: &str, config: &StoreConfig) -> anyhow::Result<Arc<dyn KvBackend>> {
    Ok(match config {
        StoreConfig::Sqlite { path } => Arc::new(sqlite::SqliteStore::open(path, label)?),
        StoreConfig::Redis { url } => Arc::new(redis::RedisStore::open(url).await?),
    })
}
