//! The host side of `fermyon:spin/key-value@2.0.0`, over [`super::KvBackend`].

use std::sync::Arc;

use wasmtime::component::Resource;

use super::KvBackend;
use crate::spin_http::bindings::fermyon::spin::key_value::{Error, Host, HostStore};
use crate::spin_http::ComponentState;

/// An open store, as the guest holds it.
pub struct KvStore {
    backend: Arc<dyn KvBackend>,
}

/// The guest-visible error for a backend failure; the detail goes to the log only.
fn backend_error(e: anyhow::Error) -> Error {
    tracing::error!(error = %format!("{e:#}"), "key-value backend failed");
    Error::Other("key-value backend failed".into())
}

impl ComponentState {
    fn store(&self, r: &Resource<KvStore>) -> wasmtime::Result<Arc<dyn KvBackend>> {
        Ok(self.table.get(r)?.backend.clone())
    }
}

impl Host for ComponentState {}

impl HostStore for ComponentState {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<KvStore>, Error>> {
        if !self.component.key_value_stores.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(backend) = self.stores.get(&label) else {
            return Ok(Err(Error::NoSuchStore));
        };
        Ok(Ok(self.table.push(KvStore { backend })?))
    }

    async fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(self.store(&store)?.get(&key).await.map_err(backend_error))
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let result = self
            .store(&store)?
            .set(&key, &value)
            .await
            .map_err(backend_error);
        if result.is_ok() && key.starts_with(vigil_core::keys::OUTBOX_PREFIX) {
            self.stores.published.notify_one();
        }
        Ok(result)
    }

    async fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self
            .store(&store)?
            .delete(&key)
            .await
            .map_err(backend_error))
    }

    async fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(self
            .store(&store)?
            .exists(&key)
            .await
            .map_err(backend_error))
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(self.store(&store)?.get_keys().await.map_err(backend_error))
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
