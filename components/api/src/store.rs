//! Task records and the outbox in the Spin key-value store.

use spin_sdk::key_value::Store;
use vigil_core::error::ApiError;
use vigil_core::event::Event;
use vigil_core::keys;
use vigil_core::task::Task;

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

    /// One task record.
    pub fn task(&self, id: &str) -> Result<Option<Task>, ApiError> {
        let Some(bytes) = self.0.get(&keys::task(id)).map_err(kv_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| ApiError::internal("a stored task record is unreadable"))
    }

    /// Writes a task record.
    pub fn put_task(&self, task: &Task) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(task).map_err(kv_error)?;
        self.0.set(&keys::task(&task.id), &bytes).map_err(kv_error)
    }

    /// Every task record. A full scan: fine at this stage, indexed later.
    pub fn all_tasks(&self) -> Result<Vec<Task>, ApiError> {
        let keys = self.0.get_keys().map_err(kv_error)?;
        let mut tasks = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(keys::TASK_PREFIX)) {
            if let Some(bytes) = self.0.get(key).map_err(kv_error)? {
                if let Ok(task) = serde_json::from_slice(&bytes) {
                    tasks.push(task);
                }
            }
        }
        Ok(tasks)
    }

    /// Publishes events: one outbox entry the host's relay sequences and pushes.
    /// Once this returns, the events are durable.
    pub fn publish(&self, events: &[Event]) -> Result<(), ApiError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(kv_error)?;
        let key = keys::outbox(now_micros(), u64::from_le_bytes(nonce));
        let bytes = serde_json::to_vec(events).map_err(kv_error)?;
        self.0.set(&key, &bytes).map_err(kv_error)
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
