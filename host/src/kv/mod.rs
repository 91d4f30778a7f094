//! The Spin key-value capability: a backend trait, its backends, and the host side of
//! the `fermyon:spin/key-value` interface.

pub mod host;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::runtime_config::StoreConfig;

/// A key-value backend. Keys are strings, values bytes.
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
    /// Every key.
    async fn get_keys(&self) -> anyhow::Result<Vec<String>>;
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
}

/// The open stores by label, plus the signal that something was published.
pub struct Stores {
    by_label: BTreeMap<String, Arc<dyn KvBackend>>,
    /// Woken when a component writes an outbox key, so the relay moves it at once.
    pub published: Arc<Notify>,
}

impl Stores {
    /// Opens every configured store.
    pub fn open(config: &BTreeMap<String, StoreConfig>) -> anyhow::Result<Self> {
        let mut by_label = BTreeMap::new();
        for (label, c) in config {
            let backend: Arc<dyn KvBackend> = match c {
                StoreConfig::Sqlite { path } => Arc::new(sqlite::SqliteStore::open(path, label)?),
            };
            by_label.insert(label.clone(), backend);
        }
        Ok(Self {
            by_label,
            published: Arc::new(Notify::new()),
        })
    }

    /// The store named `label`.
    pub fn get(&self, label: &str) -> Option<Arc<dyn KvBackend>> {
        self.by_label.get(label).cloned()
    }
}
