//! Records and the outbox in the Spin key-value store (layout in [`vigil_core::keys`]).

use serde::de::DeserializeOwned;
use serde::Serialize;
use spin_sdk::key_value::Store;
use vigil_core::error::ApiError;
use vigil_core::event::Event;
use vigil_core::keys;

/// The `default` store, with Vigil's layout.
pub struct Kv(Store);

fn kv_error(e: impl std::fmt::Debug) -> ApiError {
    eprintln!("key-value error: {e:?}");
    ApiError::unavailable("the key-value store is unavailable")
}

impl Kv {
    /// Opens the `default` store.
    pub fn open() -> Result<Self, ApiError> {
        Store::open_default().map(Self).map_err(kv_error)
    }

    /// The record at `key`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        let Some(bytes) = self.0.get(key).map_err(kv_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| ApiError::internal(format!("the stored record {key} is unreadable")))
    }

    /// Writes the record at `key`.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(value).map_err(kv_error)?;
        self.0.set(key, &bytes).map_err(kv_error)
    }

    /// Every record under `prefix`. A full key scan: fine at this size, indexed later.
    pub fn all<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, ApiError> {
        let keys = self.0.get_keys().map_err(kv_error)?;
        let mut out = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(prefix)) {
            if let Some(bytes) = self.0.get(key).map_err(kv_error)? {
                if let Ok(v) = serde_json::from_slice(&bytes) {
                    out.push(v);
                }
            }
        }
        Ok(out)
    }

    /// The last sequence number the host's relay assigned.
    pub fn head(&self) -> Result<u64, ApiError> {
        Ok(self
            .0
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
