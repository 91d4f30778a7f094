//! The Spin key-value store `default`, with Vigil's layout ([`vigil_core::keys`],
//! `vigil-store`): plain gets and sets through `fermyon:spin/key-value`, and
//! compare-and-swap, counters and batches through `wasi:keyvalue@0.2.0-draft2` — the
//! same keys in the same store, under Vigil's host and under `spin up` alike.

use serde::de::DeserializeOwned;
use serde::Serialize;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store as wasi};
use vigil_core::error::ApiError;
use vigil_core::event::Event;
use vigil_core::keys;
use vigil_store::kv::KvError;

/// The `default` store, with Vigil's layout.
pub struct Kv {
    spin: Store,
    bucket: wasi::Bucket,
}

/// The store label every component uses.
const LABEL: &str = "default";

fn kv_error(e: impl std::fmt::Debug) -> ApiError {
    eprintln!("key-value error: {e:?}");
    ApiError::unavailable("the key-value store is unavailable")
}

fn wasi_error(e: wasi::Error) -> KvError {
    KvError::Unavailable(format!("{e:?}"))
}

/// The API error for a failed store operation.
pub fn api_error(e: KvError) -> ApiError {
    eprintln!("key-value error: {e}");
    match e {
        KvError::Unavailable(_) => ApiError::unavailable("the key-value store is unavailable"),
        KvError::Contention(_) => ApiError::unavailable(
            "too many concurrent updates of the same records; retry the request",
        ),
        KvError::Corrupt { key, .. } => {
            ApiError::internal(format!("the stored value {key} is unreadable"))
        }
    }
}

impl Kv {
    /// Opens the `default` store through both interfaces.
    pub fn open() -> Result<Self, ApiError> {
        let spin = Store::open(LABEL).map_err(kv_error)?;
        let bucket = wasi::open(LABEL).map_err(kv_error)?;
        Ok(Self { spin, bucket })
    }

    /// The JSON record at `key`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        let Some(bytes) = self.spin.get(key).map_err(kv_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| ApiError::internal(format!("the stored record {key} is unreadable")))
    }

    /// The JSON records at `keys` (missing or unreadable ones left out), in order.
    pub fn get_all<T: DeserializeOwned>(&self, keys: &[String]) -> Result<Vec<T>, ApiError> {
        let values = vigil_store::kv::Kv::get_many(self, keys).map_err(api_error)?;
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect())
    }

    /// Writes the JSON record at `key`.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(value).map_err(kv_error)?;
        self.spin.set(key, &bytes).map_err(kv_error)
    }

    /// The last sequence number the host's relay assigned.
    pub fn head(&self) -> Result<u64, ApiError> {
        Ok(self
            .spin
            .get(keys::SEQ_KEY)
            .map_err(kv_error)?
            .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
            .unwrap_or(0))
    }

    /// Publishes events: one outbox entry the host's relay sequences and pushes.
    /// Once this returns, the events are durable.
    pub fn publish(&self, events: &[Event]) -> Result<(), ApiError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(kv_error)?;
        let key = keys::outbox(crate::clock::micros(), u64::from_le_bytes(nonce));
        self.put(&key, &events)
    }
}

impl vigil_store::kv::Kv for Kv {
    type Cas = atomics::Cas;

    fn get(&self, key: &str) -> vigil_store::kv::Result<Option<Vec<u8>>> {
        self.bucket.get(key).map_err(wasi_error)
    }

    /// One `get-many`, or single gets where it fails: Spin's Redis store answers
    /// `get-many` with `KEYS k1 k2 …`, which Redis refuses for more than one argument —
    /// and which, for exactly one, would scan the keyspace, so one key is a plain get.
    /// Answers are matched by key: a store may leave missing keys out.
    fn get_many(&self, keys: &[String]) -> vigil_store::kv::Result<Vec<Option<Vec<u8>>>> {
        if keys.len() <= 1 {
            return keys
                .iter()
                .map(|k| self.bucket.get(k).map_err(wasi_error))
                .collect();
        }
        match batch::get_many(&self.bucket, keys) {
            Ok(found) => {
                let mut by_key: std::collections::HashMap<String, Vec<u8>> = found
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v?)))
                    .collect();
                Ok(keys.iter().map(|k| by_key.remove(k)).collect())
            }
            Err(_) => keys
                .iter()
                .map(|k| self.bucket.get(k).map_err(wasi_error))
                .collect(),
        }
    }

    fn set(&self, key: &str, value: &[u8]) -> vigil_store::kv::Result<()> {
        self.bucket.set(key, value).map_err(wasi_error)
    }

    fn set_many(&self, items: &[(String, Vec<u8>)]) -> vigil_store::kv::Result<()> {
        batch::set_many(&self.bucket, items).map_err(wasi_error)
    }

    fn delete_many(&self, keys: &[String]) -> vigil_store::kv::Result<()> {
        batch::delete_many(&self.bucket, keys).map_err(wasi_error)
    }

    fn increment(&self, key: &str, delta: i64) -> vigil_store::kv::Result<i64> {
        atomics::increment(&self.bucket, key, delta).map_err(wasi_error)
    }

    fn cas(&self, key: &str) -> vigil_store::kv::Result<(atomics::Cas, Option<Vec<u8>>)> {
        let cas = atomics::Cas::new(&self.bucket, key).map_err(wasi_error)?;
        let current = cas.current().map_err(wasi_error)?;
        Ok((cas, current))
    }

    fn swap(&self, cas: atomics::Cas, value: &[u8]) -> vigil_store::kv::Result<bool> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(true),
            Err(atomics::CasError::CasFailed(_)) => Ok(false),
            Err(atomics::CasError::StoreError(e)) => Err(wasi_error(e)),
        }
    }

    fn random(&self) -> u64 {
        let mut b = [0u8; 8];
        // Page names only need to differ; the clock is a fallback if randomness fails.
        if getrandom::fill(&mut b).is_err() {
            return crate::clock::micros();
        }
        u64::from_le_bytes(b)
    }
}
