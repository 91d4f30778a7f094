//! Redis (`type = "redis"`, `url = "redis://…"`), with the key layout of Spin's own
//! Redis store: each key a plain Redis string under the key itself, no prefix and no
//! store label, values the bytes written. A component under `spin up` with the same
//! runtime config and a Vigil host read and write the same data.
//!
//! Where Spin's store differs, this one is the correct one: `get_many` is `MGET` (Spin's
//! sends `KEYS`), `compare_and_swap` is one Lua compare-then-set, atomic against other
//! hosts and against Spin's own `WATCH`/`MULTI` swap (a script's write trips a `WATCH`),
//! and the whole keyspace is walked with `SCAN`, never `KEYS *`.
//!
//! Every command is bounded ([`CONNECT_TIMEOUT`], [`RESPONSE_TIMEOUT`]): with Redis
//! away a caller gets an error quickly and the connection is re-made on the next command.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, Script};
use anyhow::Context;
use async_trait::async_trait;

use crate::KvBackend;

mod watch;

/// Longest wait for a TCP connection to Redis. Redis runs next to the hosts (same
/// machine or LAN): one that takes longer to accept is as good as down, and an ingest
/// request should hear so (503) rather than wait.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for the answer to one command. Vigil's commands are O(entries touched)
/// and answer in well under a millisecond; seconds mean Redis is stuck or gone.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys asked for per `SCAN` round trip (Redis's default hint is 10, which makes a
/// walk of a large keyspace needlessly chatty).
const SCAN_COUNT: usize = 1000;

/// Sets `KEYS[1]` to `ARGV[3]` only if its value is still `ARGV[2]` (`ARGV[1]` = "1"),
/// or only if it does not exist (`ARGV[1]` = "0"). One script, so nothing runs between
/// the compare and the set.
const CAS: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

/// A client and a connection to one Redis database, with Vigil's timeouts: the
/// connection manager re-connects on the next command after a failure, with no retry
/// loop of its own (a command never waits for more than one connection attempt).
pub async fn connect(url: &str) -> anyhow::Result<(Client, ConnectionManager)> {
    let client = Client::open(url).with_context(|| format!("invalid Redis URL `{url}`"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(0);
    let conn = ConnectionManager::new_with_config(client.clone(), config)
        .await
        .with_context(|| format!("connecting to Redis at {}", redacted(url)))?;
    Ok((client, conn))
}

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

/// One Redis database, shared by every store label configured with it (as in Spin,
/// the label is not part of the key).
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    cas: Script,
}

impl RedisStore {
    /// Connects to `url`, e.g. `redis://127.0.0.1:6379/0`.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let (client, conn) = connect(url).await?;
        Ok(Self {
            client,
            conn,
            cas: Script::new(CAS),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Every key matching the glob `pattern`, walked with `SCAN`.
    async fn scan(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl KvBackend for RedisStore {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.conn().get(key).await?)
    }

    async fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        Ok(self.conn().set(key, value).await?)
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        Ok(self.conn().del(key).await?)
    }

    async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        Ok(self.conn().exists(key).await?)
    }

    async fn get_keys(&self) -> anyhow::Result<Vec<String>> {
        self.scan("*").await
    }

    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(::redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.conn())
            .await?)
    }

    /// `INCRBY`: the counter is a decimal string, as under Spin's Redis store.
    async fn increment(&self, key: &str, delta: i64) -> anyhow::Result<i64> {
        Ok(self.conn().incr(key, delta).await?)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> anyhow::Result<bool> {
        let swapped: i64 = self
            .cas
            .key(key)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(swapped == 1)
    }

    /// A `SCAN` of the whole keyspace: for start-up and slow sweeps, never per request.
    async fn scan_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut keys = self.scan(&format!("{}*", glob_escape(prefix))).await?;
        keys.sort_unstable();
        keys.truncate(limit);
        let values = self.get_many(&keys).await?;
        // A key deleted between the scan and the read is simply no longer there.
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k, v?)))
            .collect())
    }

    /// `MULTI`/`EXEC`: other clients see all of it or none of it.
    async fn write_batch(
        &self,
        sets: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> anyhow::Result<()> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for (k, v) in &sets {
            pipe.set(k, v).ignore();
        }
        if !deletes.is_empty() {
            pipe.del(&deletes).ignore();
        }
        Ok(pipe.query_async(&mut self.conn()).await?)
    }

    fn watch_prefix(&self, prefix: &str) -> Option<tokio::sync::mpsc::Receiver<crate::Watched>> {
        Some(watch::start(
            self.client.clone(),
            self.conn(),
            prefix.to_owned(),
        ))
    }
}

/// `prefix` with Redis glob metacharacters escaped, for `SCAN MATCH` and `PSUBSCRIBE`.
pub fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
