//! Small registries of the names in use — queues, workers, task names — so listings of
//! queues and workers, and sorting by name, never list the keyspace. Each is one JSON
//! array, written only when a new name appears.

use std::collections::BTreeSet;

use vigil_core::keys;
use vigil_core::task::Task;

use crate::kv::{update, Kv, KvError, Result};

/// Most names a registry keeps. Clusters have tens of queues and task names and at
/// most thousands of workers; past this, new names are not listed (their records and
/// tasks still are), so a runaway producer cannot grow the key without bound.
pub const MAX_NAMES: usize = 10_000;

/// The names in registry `key`, sorted.
pub fn names<K: Kv>(kv: &K, key: &str) -> Result<Vec<String>> {
    match kv.get(key)? {
        None => Ok(Vec::new()),
        Some(b) => decode(key, &b).map(|s| s.into_iter().collect()),
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<BTreeSet<String>> {
    serde_json::from_slice(bytes).map_err(|e| KvError::Corrupt {
        key: key.to_owned(),
        why: e.to_string(),
    })
}

/// Adds the names of `wanted` that registry `key` lacks (one read when none is new).
pub fn ensure<K: Kv>(kv: &K, key: &str, wanted: BTreeSet<&str>) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let have: BTreeSet<String> = names(kv, key)?.into_iter().collect();
    if wanted.iter().all(|n| have.contains(*n)) {
        return Ok(());
    }
    update(kv, key, |cur| {
        let mut set = cur.map(|b| decode(key, b)).transpose()?.unwrap_or_default();
        let before = set.len();
        for n in &wanted {
            if set.len() < MAX_NAMES {
                set.insert((*n).to_owned());
            }
        }
        let bytes = serde_json::to_vec(&set).unwrap_or_default();
        Ok((set.len() > before).then_some((bytes, ())))
    })?;
    Ok(())
}

/// Registers the queues and task names of `tasks`.
pub fn note_tasks<'t, K: Kv>(kv: &K, tasks: impl Iterator<Item = &'t Task> + Clone) -> Result<()> {
    ensure(
        kv,
        keys::QUEUE_NAMES,
        tasks.clone().filter_map(|t| t.queue.as_deref()).collect(),
    )?;
    ensure(
        kv,
        keys::TASK_NAMES,
        tasks.filter_map(|t| t.name.as_deref()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryKv;

    #[test]
    fn adds_only_what_is_new() {
        let kv = MemoryKv::new();
        ensure(&kv, "reg/x", ["b", "a"].into()).unwrap();
        ensure(&kv, "reg/x", ["a", "c"].into()).unwrap();
        assert_eq!(names(&kv, "reg/x").unwrap(), ["a", "b", "c"]);
        kv.reset_counts();
        ensure(&kv, "reg/x", ["c"].into()).unwrap();
        assert_eq!((kv.reads(), kv.writes()), (1, 0));
    }
}
