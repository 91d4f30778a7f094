//! The key-value capability as components see it: which stores a component may open,
//! the host side of `fermyon:spin/key-value@2.0.0`, and the [`WriteWatch`] through which
//! the embedding host learns of writes. `wasi:keyvalue` is in [`crate::wasi_keyvalue`].

use std::sync::Arc;

use vigil_kv::{KvBackend, Stores};
use wasmtime::component::Resource;

use crate::http::bindings::fermyon::spin::key_value::{Error, Host, HostStore};
use crate::http::ComponentState;

/// Told of every key a component wrote, once the write succeeded. This is how the host
/// embedding the runtime reacts to particular keys (say, events published to an outbox)
/// while the key-value code stays ignorant of what any key means.
pub trait WriteWatch: Send + Sync + 'static {
    /// `key` of store `label` was set (or swapped, or incremented).
    fn written(&self, label: &str, key: &str);
}

/// The stores of a running application, and who watches writes to them.
pub struct KeyValue {
    stores: Stores,
    watch: Option<Arc<dyn WriteWatch>>,
}

impl KeyValue {
    /// The stores, with an optional watcher of writes.
    pub fn new(stores: Stores, watch: Option<Arc<dyn WriteWatch>>) -> Self {
        Self { stores, watch }
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

    pub(crate) fn written(&self, label: &str, key: &str) {
        if let Some(w) = &self.watch {
            w.written(label, key);
        }
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
            Ok(store) => Ok(Ok(self.table.push(store)?)),
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
        let result = backend.set(&key, &value).await;
        if result.is_ok() {
            self.kv.written(&label, &key);
        }
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
