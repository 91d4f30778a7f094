//! The embedded default: SQLite in Spin's own schema, so the same file works under
//! `spin up` and under Vigil. WAL mode; writes are committed in groups
//! ([`group`]), and a write is durable — it survives the process being killed — once
//! [`KvBackend::sync`] has returned.

mod group;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{KvBackend, SyncToken};
use group::Group;

pub use group::{MAX_TX_AGE, MAX_TX_WRITES};

/// How long a writer waits for another process (e.g. `spin up`) holding the lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Prepared statements kept: every statement this backend runs, with room to spare
/// (rusqlite's default of 16 is just short of them, and a miss re-parses the SQL).
const STATEMENT_CACHE: usize = 32;

/// Sets a key, overwriting: `?1` store, `?2` key, `?3` value.
const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                      ON CONFLICT(store, key) DO UPDATE SET value = excluded.value";
/// The value of a key: `?1` store, `?2` key.
const SELECT: &str = "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2";
/// Deletes a key: `?1` store, `?2` key.
const DELETE: &str = "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2";

/// One store label inside a SQLite file.
pub struct SqliteStore {
    group: Arc<Group>,
    label: String,
}

impl SqliteStore {
    /// Opens (creating if needed) `path` for store `label`.
    pub fn open(path: &Path, label: &str) -> anyhow::Result<Self> {
        Self::open_grouped(path, label, MAX_TX_AGE)
    }

    /// [`SqliteStore::open`] with groups open at most `max_age` (tests hold them longer).
    fn open_grouped(
        path: &Path,
        label: &str,
        max_age: std::time::Duration,
    ) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A commit is durable against the process being killed once it is in the WAL
        // (the OS has it); checkpoints sync the file.
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
            group: Group::new(conn, max_age),
            label: label.to_owned(),
        })
    }

    fn get_one(&self, conn: &Connection, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(conn
            .prepare_cached(SELECT)?
            .query_row(params![self.label, key], |r| r.get(0))
            .optional()?)
    }
}

#[async_trait]
impl KvBackend for SqliteStore {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.group.read(|c| self.get_one(c, key))
    }

    async fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.group.write(|c| {
            c.prepare_cached(UPSERT)?
                .execute(params![self.label, key, value])?;
            Ok(())
        })
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.group.write(|c| {
            c.prepare_cached(DELETE)?
                .execute(params![self.label, key])?;
            Ok(())
        })
    }

    async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        self.group
            .read(|c| keys.iter().map(|k| self.get_one(c, k)).collect())
    }

    async fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        let add = |c: &Connection| {
            // Spin's own encoding of a counter in this schema: i64, little-endian.
            let n = match self.get_one(c, key)? {
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
            if delta != 0 {
                c.prepare_cached(UPSERT)?
                    .execute(params![self.label, key, next.to_le_bytes()])?;
            }
            Ok(next)
        };
        if delta == 0 {
            // How counters are read: no group to open.
            return self.group.read(add);
        }
        // One write statement after a read, under the group's lock: no savepoint needed
        // (a failing upsert changes nothing), and a savepoint costs two statements and
        // a sub-journal of every page the upsert touches.
        self.group.write(add)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> anyhow::Result<bool> {
        // One statement each, inside the group that holds SQLite's write lock: atomic
        // against every other writer of the file (other processes included).
        let changed = self.group.write(|c| {
            Ok(match expected {
                Some(old) => c
                    .prepare_cached(
                        "UPDATE spin_key_value SET value = ?4
                         WHERE store = ?1 AND key = ?2 AND value = ?3",
                    )?
                    .execute(params![self.label, key, old, new])?,
                None => c
                    .prepare_cached(
                        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT(store, key) DO NOTHING",
                    )?
                    .execute(params![self.label, key, new])?,
            })
        })?;
        Ok(changed == 1)
    }

    async fn get_keys(&self) -> anyhow::Result<Vec<String>> {
        self.group.read(|c| {
            let mut stmt = c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
            let keys = stmt.query_map(params![self.label], |r| r.get(0))?;
            Ok(keys.collect::<Result<_, _>>()?)
        })
    }

    async fn scan_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        self.group.read(|c| {
            // A range on the primary key, not LIKE: uses the index.
            let mut stmt = c.prepare_cached(
                "SELECT key, value FROM spin_key_value
                 WHERE store = ?1 AND key >= ?2 AND key < ?3 ORDER BY key LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![self.label, prefix, prefix_end(prefix), limit as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    async fn write_batch(
        &self,
        sets: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> anyhow::Result<()> {
        self.group.write_all(|c| {
            let mut upsert = c.prepare_cached(UPSERT)?;
            for (k, v) in &sets {
                upsert.execute(params![self.label, k, v])?;
            }
            let mut delete = c.prepare_cached(DELETE)?;
            for k in &deletes {
                delete.execute(params![self.label, k])?;
            }
            Ok(())
        })
    }

    fn sync_token(&self) -> SyncToken {
        self.group.token()
    }

    async fn sync(&self, token: SyncToken) -> anyhow::Result<()> {
        self.group.sync(token)
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
mod tests;
