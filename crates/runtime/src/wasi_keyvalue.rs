//! The host side of `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) over the same
//! stores as Spin's key-value interface, as Spin 3+ serves it: a bucket is a store
//! label, and the keys are the same keys. Components use it for what Spin's own
//! interface lacks: compare-and-swap, counters and batched reads and writes.

use std::sync::Arc;

use vigil_kv::KvBackend;
use wasmtime::component::Resource;

use crate::http::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::http::ComponentState;
use crate::key_value::{logged, OpenStore, Refusal};

/// A compare-and-swap in progress: the value the guest saw, which must still be there
/// when it swaps.
pub struct Cas {
    backend: Arc<dyn KvBackend>,
    key: String,
    seen: Option<Vec<u8>>,
}

fn other(e: anyhow::Error) -> store::Error {
    store::Error::Other(logged(e))
}

impl store::Host for ComponentState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, store::Error>> {
        match self.kv.open(&self.component.key_value_stores, &identifier) {
            Ok(s) => {
                self.opened.note(&s.backend);
                Ok(Ok(self.table.push(s)?))
            }
            Err(Refusal::AccessDenied) => Ok(Err(store::Error::AccessDenied)),
            Err(Refusal::NoSuchStore) => Ok(Err(store::Error::NoSuchStore)),
        }
    }
}

impl store::HostBucket for ComponentState {
    async fn get(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        Ok(backend.get(&key).await.map_err(other))
    }

    async fn set(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (label, backend) = self.open_store(&bucket)?;
        Ok(self
            .kv
            .set(&label, backend.as_ref(), &key, &value)
            .await
            .map_err(other))
    }

    async fn delete(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        Ok(backend.delete(&key).await.map_err(other))
    }

    async fn exists(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        Ok(backend.exists(&key).await.map_err(other))
    }

    /// Every key at once (no cursor): like Spin's `get-keys`, a scan of the whole store.
    async fn list_keys(
        &mut self,
        bucket: Resource<OpenStore>,
        _cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        Ok(backend
            .get_keys()
            .await
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(other))
    }

    async fn drop(&mut self, bucket: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl batch::Host for ComponentState {
    async fn get_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        Ok(backend
            .get_many(&keys)
            .await
            .map(|values| keys.into_iter().zip(values).collect())
            .map_err(other))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<OpenStore>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (label, backend) = self.open_store(&bucket)?;
        Ok(self
            .kv
            .set_many(&label, backend.as_ref(), pairs)
            .await
            .map_err(other))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        Ok(backend.delete_many(keys).await.map_err(other))
    }
}

impl atomics::HostCas for ComponentState {
    /// Reads the value now: the swap succeeds only if it is still the same.
    async fn new(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        let seen = match backend.get(&key).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(other(e))),
        };
        let cas = Cas { backend, key, seen };
        Ok(Ok(self.table.push(cas)?))
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(Ok(self.table.get(&cas)?.seen.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl atomics::Host for ComponentState {
    async fn increment(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let (_, backend) = self.open_store(&bucket)?;
        Ok(backend.increment(&key, delta).await.map_err(other))
    }

    /// Swaps if the value is still what the handle saw; otherwise fails with a fresh
    /// handle holding the value now there, ready for the guest's retry.
    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let mut cas = self.table.delete(cas)?;
        match cas
            .backend
            .compare_and_swap(&cas.key, cas.seen.as_deref(), &value)
            .await
        {
            Ok(true) => Ok(Ok(())),
            Ok(false) => match cas.backend.get(&cas.key).await {
                Ok(now) => {
                    cas.seen = now;
                    Ok(Err(atomics::CasError::CasFailed(self.table.push(cas)?)))
                }
                Err(e) => Ok(Err(atomics::CasError::StoreError(other(e)))),
            },
            Err(e) => Ok(Err(atomics::CasError::StoreError(other(e)))),
        }
    }
}
