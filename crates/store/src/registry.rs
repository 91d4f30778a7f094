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
    Ok(stored(key, kv.get(key)?)?.into_iter().collect())
}

/// The names stored at `key` (none if it is missing).
fn stored(key: &str, bytes: Option<Vec<u8>>) -> Result<BTreeSet<String>> {
    bytes.map_or_else(|| Ok(BTreeSet::new()), |b| decode(key, &b))
}

fn decode(key: &str, bytes: &[u8]) -> Result<BTreeSet<String>> {
    serde_json::from_slice(bytes).map_err(|e| KvError::Corrupt {
        key: key.to_owned(),
        why: e.to_string(),
    })
}

/// Adds the names of `wanted` that registry `key` lacks (one read when none is new).
pub fn ensure<K: Kv>(kv: &K, key: &str, wanted: BTreeSet<&str>) -> Result<()> {
    ensure_all(kv, [(key, wanted)])
}

/// [`ensure`] for several registries, all read in one round trip.
pub fn ensure_all<'n, K: Kv>(
    kv: &K,
    wanted: impl IntoIterator<Item = (&'n str, BTreeSet<&'n str>)>,
) -> Result<()> {
    let wanted: Vec<(&str, BTreeSet<&str>)> =
        wanted.into_iter().filter(|(_, w)| !w.is_empty()).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = wanted.iter().map(|(k, _)| (*k).to_owned()).collect();
    for ((key, names), bytes) in wanted.iter().zip(kv.get_many(&keys)?) {
        let have = stored(key, bytes)?;
        if !names.iter().all(|n| have.contains(*n)) {
            add(kv, key, names)?;
        }
    }
    Ok(())
}

/// Adds `names` to registry `key`, by compare-and-swap.
fn add<K: Kv>(kv: &K, key: &str, names: &BTreeSet<&str>) -> Result<()> {
    update(kv, key, |cur| {
        let mut set = cur.map(|b| decode(key, b)).transpose()?.unwrap_or_default();
        let before = set.len();
        for n in names {
            if set.len() < MAX_NAMES {
                set.insert((*n).to_owned());
            }
        }
        let bytes = serde_json::to_vec(&set).unwrap_or_default();
        Ok((set.len() > before).then_some((bytes, ())))
    })?;
    Ok(())
}

/// Registers the queues and task names of `tasks` (one read when none is new).
pub fn note_tasks<'t, K: Kv>(kv: &K, tasks: impl Iterator<Item = &'t Task> + Clone) -> Result<()> {
    ensure_all(
        kv,
        [
            (
                keys::QUEUE_NAMES,
                tasks.clone().filter_map(|t| t.queue.as_deref()).collect(),
            ),
            (
                keys::TASK_NAMES,
                tasks.filter_map(|t| t.name.as_deref()).collect(),
            ),
        ],
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

    #[test]
    fn a_batch_with_no_new_name_reads_both_registries_at_once() {
        let kv = MemoryKv::new();
        let mut t = Task::new("t1");
        t.queue = Some("q".into());
        t.name = Some("n".into());
        note_tasks(&kv, [&t].into_iter()).unwrap();
        assert_eq!(names(&kv, keys::QUEUE_NAMES).unwrap(), ["q"]);
        assert_eq!(names(&kv, keys::TASK_NAMES).unwrap(), ["n"]);
        kv.reset_counts();
        note_tasks(&kv, [&t].into_iter()).unwrap();
        assert_eq!((kv.reads(), kv.writes()), (2, 0));
        assert!(kv.single_gets().is_empty(), "{:?}", kv.single_gets());
    }
}
