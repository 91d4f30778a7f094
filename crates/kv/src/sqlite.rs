//! The embedded default: SQLite in Spin's own schema, so the same file works under
//! `spin up` and under Vigil. WAL mode: a committed write survives the process being
//! killed.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use crate::KvBackend;

/// How long a writer waits for another process (e.g. `spin up`) holding the lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sets a key, overwriting: `?1` store, `?2` key, `?3` value.
const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                      ON CONFLICT(store, key) DO UPDATE SET value = excluded.value";

/// One store label inside a SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    label: String,
}

impl SqliteStore {
    /// Opens (creating if needed) `path` for store `label`.
    pub fn open(path: &Path, label: &str) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            label: label.to_owned(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl KvBackend for SqliteStore {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .query_row(params![self.label, key], |r| r.get(0))
            .optional()?)
    }

    async fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.conn()
            .prepare_cached(UPSERT)?
            .execute(params![self.label, key, value])?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .execute(params![self.label, key])?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
        keys.iter()
            .map(|k| {
                Ok(stmt
                    .query_row(params![self.label, k], |r| r.get(0))
                    .optional()?)
            })
            .collect()
    }

    async fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<Vec<u8>> = tx
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .query_row(params![self.label, key], |r| r.get(0))
            .optional()?;
        // Spin's own encoding of a counter in this schema: i64, little-endian.
        let n = match current {
            None => 0,
            Some(bytes) => i64::from_le_bytes(
                bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("`{key}` is not a counter"))?,
            ),
        };
        let next = n
            .checked_add(delta)
            .ok_or_else(|| anyhow::anyhow!("counter `{key}` would overflow"))?;
        tx.prepare_cached(UPSERT)?
            .execute(params![self.label, key, next.to_le_bytes()])?;
        tx.commit()?;
        Ok(next)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> anyhow::Result<bool> {
        let conn = self.conn();
        // One statement each, so SQLite's write lock makes them atomic against every
        // other writer of the file (other processes included).
        let changed = match expected {
            Some(old) => conn
                .prepare_cached(
                    "UPDATE spin_key_value SET value = ?4
                     WHERE store = ?1 AND key = ?2 AND value = ?3",
                )?
                .execute(params![self.label, key, old, new])?,
            None => conn
                .prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(store, key) DO NOTHING",
                )?
                .execute(params![self.label, key, new])?,
        };
        Ok(changed == 1)
    }

    async fn get_keys(&self) -> anyhow::Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
        let keys = stmt.query_map(params![self.label], |r| r.get(0))?;
        Ok(keys.collect::<Result<_, _>>()?)
    }

    async fn scan_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let conn = self.conn();
        // A range on the primary key, not LIKE: uses the index.
        let mut stmt = conn.prepare_cached(
            "SELECT key, value FROM spin_key_value
             WHERE store = ?1 AND key >= ?2 AND key < ?3 ORDER BY key LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![self.label, prefix, prefix_end(prefix), limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn write_batch(
        &self,
        sets: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (k, v) in &sets {
            tx.prepare_cached(UPSERT)?
                .execute(params![self.label, k, v])?;
        }
        for k in &deletes {
            tx.execute(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![self.label, k],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The smallest string greater than every string starting with `prefix`
/// (prefixes here are ASCII and end in `/`).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> SqliteStore {
        let p = std::env::temp_dir().join(format!("vigil-kv-{}-{name}.db", std::process::id()));
        let _ = std::fs::remove_file(&p);
        SqliteStore::open(&p, "default").unwrap()
    }

    #[tokio::test]
    async fn set_get_delete() {
        let s = store("basic");
        assert_eq!(s.get("a").await.unwrap(), None);
        s.set("a", b"1").await.unwrap();
        s.set("a", b"2").await.unwrap();
        assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert!(s.exists("a").await.unwrap());
        s.delete("a").await.unwrap();
        s.delete("a").await.unwrap();
        assert!(!s.exists("a").await.unwrap());
    }

    #[tokio::test]
    async fn prefix_scan_is_ordered_and_bounded() {
        let s = store("scan");
        for k in ["outbox/2", "outbox/1", "outboxx", "task/a", "outbox/3"] {
            s.set(k, b"v").await.unwrap();
        }
        let keys: Vec<String> = s
            .scan_prefix("outbox/", 2)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["outbox/1", "outbox/2"]);
        assert_eq!(s.get_keys().await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn get_many_keeps_the_order_of_the_keys() {
        let s = store("many");
        s.set("b", b"2").await.unwrap();
        s.set("a", b"1").await.unwrap();
        let keys = ["a", "missing", "b"].map(String::from);
        let got = s.get_many(&keys).await.unwrap();
        assert_eq!(got, [Some(b"1".to_vec()), None, Some(b"2".to_vec())]);
    }

    #[tokio::test]
    async fn increment_counts_from_zero_in_spins_encoding() {
        let s = store("incr");
        assert_eq!(s.increment("n", 5).await.unwrap(), 5);
        assert_eq!(s.increment("n", -2).await.unwrap(), 3);
        assert_eq!(s.increment("n", 0).await.unwrap(), 3);
        assert_eq!(s.get("n").await.unwrap(), Some(3i64.to_le_bytes().to_vec()));
        s.set("text", b"abc").await.unwrap();
        assert!(s.increment("text", 1).await.is_err());
    }

    #[tokio::test]
    async fn compare_and_swap_needs_the_value_it_saw() {
        let s = store("cas");
        assert!(s.compare_and_swap("k", None, b"1").await.unwrap());
        assert!(
            !s.compare_and_swap("k", None, b"x").await.unwrap(),
            "exists now"
        );
        assert!(!s.compare_and_swap("k", Some(b"0"), b"x").await.unwrap());
        assert!(s.compare_and_swap("k", Some(b"1"), b"2").await.unwrap());
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test]
    async fn batch_is_atomic() {
        let s = store("batch");
        s.set("old", b"x").await.unwrap();
        s.write_batch(vec![("new".into(), b"y".to_vec())], vec!["old".into()])
            .await
            .unwrap();
        assert!(s.exists("new").await.unwrap() && !s.exists("old").await.unwrap());
    }
}
