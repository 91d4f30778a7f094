//! The key-value capability as components see it: which stores a component may open,
//! the host side of `fermyon:spin/key-value@2.0.0`, and the [`TakeOver`] through which
//! the embedding host handles writes under a prefix itself. `wasi:keyvalue` is in
//! [`crate::wasi_keyvalue`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use vigil_kv::{KvBackend, Stores, SyncToken};
use wasmtime::component::Resource;

use crate::http::bindings::fermyon::spin::key_value::{Error, Host, HostStore};
use crate::http::ComponentState;

/// Handles components' `set`s of keys under a prefix instead of the store: this is how
/// the host embedding the runtime makes particular keys mean something (say, events
/// published to an outbox go straight into its event log, durable before the `set`
/// returns) while the key-value code knows nothing but the prefix. Components run
/// elsewhere (`spin up`) write such keys to the store as usual.
#[async_trait]
pub trait TakeOver: Send + Sync + 'static {
    /// A component set `key` to `value`; its `set` returns what this returns.
    async fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()>;
}

/// A prefix of one store whose writes a [`TakeOver`] handles.
struct Taken {
    label: String,
    prefix: String,
    handler: Arc<dyn TakeOver>,
}

/// The stores of a running application, and the prefixes the host takes over.
pub struct KeyValue {
    stores: Stores,
    taken: Vec<Taken>,
}

impl KeyValue {
    /// The stores; components' writes all go to them.
    pub fn new(stores: Stores) -> Self {
        Self {
            stores,
            taken: Vec::new(),
        }
    }

    /// Has `handler` take over `set`s of keys starting with `prefix` in store `label`.
    pub fn take_over(mut self, label: &str, prefix: &str, handler: Arc<dyn TakeOver>) -> Self {
        self.taken.push(Taken {
            label: label.to_owned(),
            prefix: prefix.to_owned(),
            handler,
        });
        self
    }

    fn taken(&self, label: &str, key: &str) -> Option<&Arc<dyn TakeOver>> {
        self.taken
            .iter()
            .find(|t| t.label == label && key.starts_with(&t.prefix))
            .map(|t| &t.handler)
    }

    /// A component's `set`: to the store, or to whoever took the key's prefix over.
    pub(crate) async fn set(
        &self,
        label: &str,
        backend: &dyn KvBackend,
        key: &str,
        value: &[u8],
    ) -> anyhow::Result<()> {
        match self.taken(label, key) {
            Some(handler) => handler.set(key, value).await,
            None => backend.set(key, value).await,
        }
    }

    /// A component's `set-many`: the store's pairs all or nothing, then each taken-over
    /// pair (records before the events that announce them).
    pub(crate) async fn set_many(
        &self,
        label: &str,
        backend: &dyn KvBackend,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        let (taken, stored): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(k, _)| self.taken(label, k).is_some());
        if !stored.is_empty() {
            backend.set_many(stored).await?;
        }
        for (k, v) in taken {
            self.set(label, backend, &k, &v).await?;
        }
        Ok(())
    }

    /// The store named `label`.
    pub fn get(&self, label: &str) -> Option<Arc<dyn KvBackend>> {
        self.stores.get(label)
    }

    /// Opens `label` for `component`: it must be granted in the manifest and configured.
    pub(crate) fn open(&self, component: &[String], label: &str) -> Result<OpenStore, Refusal> {
        if !component.iter().any(|l| l == label) {
            return Err(Refusal::AccessDenied);
        }
        let backend = self.get(label).ok_or(Refusal::NoSuchStore)?;
        Ok(OpenStore {
            label: label.to_owned(),
            backend,
        })
    }
}

/// The stores one request opened, each with the [`SyncToken`] taken when it was first
/// opened (before any operation on it). Backends may commit writes in groups: before
/// the request is answered, [`Opened::sync`] makes everything it did durable, or fails
/// if some of it may have been lost, and then the answer must not claim it.
#[derive(Default)]
pub struct Opened(Mutex<Vec<(Arc<dyn KvBackend>, SyncToken)>>);

impl Opened {
    pub(crate) fn note(&self, backend: &Arc<dyn KvBackend>) {
        let mut opened = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !opened.iter().any(|(b, _)| Arc::ptr_eq(b, backend)) {
            opened.push((backend.clone(), backend.sync_token()));
        }
    }

    /// Syncs every store the request opened.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let opened = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (backend, token) in opened {
            backend.sync(token).await?;
        }
        Ok(())
    }
}

/// Why a store could not be opened (both key-value interfaces have these two cases).
pub(crate) enum Refusal {
    AccessDenied,
    NoSuchStore,
}

/// An open store, as the guest holds it (a `store` of Spin's interface, a `bucket` of
/// `wasi:keyvalue`).
pub struct OpenStore {
    pub(crate) label: String,
    pub(crate) backend: Arc<dyn KvBackend>,
}

/// Logs a backend failure; the guest sees only that the backend failed.
pub(crate) fn logged(e: anyhow::Error) -> String {
    tracing::error!(error = %format!("{e:#}"), "key-value backend failed");
    "key-value backend failed".into()
}

impl ComponentState {
    pub(crate) fn open_store(
        &self,
        r: &Resource<OpenStore>,
    ) -> wasmtime::Result<(String, Arc<dyn KvBackend>)> {
        let s = self.table.get(r)?;
        Ok((s.label.clone(), s.backend.clone()))
    }
}

impl Host for ComponentState {}

impl HostStore for ComponentState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        match self.kv.open(&self.component.key_value_stores, &label) {
            Ok(store) => {
                self.opened.note(&store.backend);
                Ok(Ok(self.table.push(store)?))
            }
            Err(Refusal::AccessDenied) => Ok(Err(Error::AccessDenied)),
            Err(Refusal::NoSuchStore) => Ok(Err(Error::NoSuchStore)),
        }
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (_, backend) = self.open_store(&store)?;
        Ok(backend.get(&key).await.map_err(|e| Error::Other(logged(e))))
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (label, backend) = self.open_store(&store)?;
        let result = self.kv.set(&label, backend.as_ref(), &key, &value).await;
        Ok(result.map_err(|e| Error::Other(logged(e))))
    }

    async fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (_, backend) = self.open_store(&store)?;
        Ok(backend
            .delete(&key)
            .await
            .map_err(|e| Error::Other(logged(e))))
    }

    async fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (_, backend) = self.open_store(&store)?;
        Ok(backend
            .exists(&key)
            .await
            .map_err(|e| Error::Other(logged(e))))
    }

    async fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let (_, backend) = self.open_store(&store)?;
        Ok(backend
            .get_keys()
            .await
            .map_err(|e| Error::Other(logged(e))))
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
