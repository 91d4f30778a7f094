//! Vigil's event log: every published event, with a sequence number assigned exactly
//! once per deployment, kept for a bounded history. One trait, [`EventLog`] (append,
//! read a range, head, wait for new: the role Centrifuge's `Broker` plays), and two
//! implementations, picked by the `default` store's backend ([`open`]):
//!
//! - [`embedded`]: in the key-value store itself (SQLite), for one host.
//! - [`redis`]: in Redis, for several hosts: one Lua script per append assigns the
//!   numbers, and a pub/sub channel tells every host of new heads.
//!
//! Both keep the layout components read through the key-value interface (so the feed
//! works under `spin up` too): `event/<seq>` holds each event's JSON and `meta/seq` the
//! head as a decimal string ([`vigil_core::keys`]). Nothing else in Vigil knows which
//! implementation runs.
#![deny(missing_docs)]

pub mod embedded;
pub mod redis;

mod cache;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use vigil_core::event::Event;
use vigil_kv::config::StoreConfig;
use vigil_kv::KvBackend;

/// A sequenced event: the envelope and its JSON, made once and shared by everyone who
/// sends it.
#[derive(Debug)]
pub struct Published {
    /// The event, `seq` set.
    pub event: Event,
    /// Its JSON envelope, as stored in the log.
    pub json: String,
}

impl Published {
    /// `event` numbered `seq`.
    pub fn new(mut event: Event, seq: u64) -> anyhow::Result<Self> {
        event.seq = seq;
        let json = serde_json::to_string(&event)?;
        Ok(Self { event, json })
    }

    /// Reads an entry of the log.
    pub fn parse(json: String) -> anyhow::Result<Self> {
        let event = serde_json::from_str(&json)?;
        Ok(Self { event, json })
    }
}

/// Log entries as their readers serve them: each followed by the events derived from it
/// (seed 003's job notification of a `task_update`, [`vigil_core::jobs::derived`]),
/// which carry its sequence number.
pub fn with_derived(entries: Vec<Arc<Published>>) -> Vec<Arc<Published>> {
    let mut out = Vec::with_capacity(entries.len() * 2);
    for p in entries {
        let derived = vigil_core::jobs::derived(&p.event);
        let seq = p.event.seq;
        out.push(p);
        // A derived event always serializes (it is built from a parsed one).
        out.extend(derived.and_then(|e| Published::new(e, seq).ok().map(Arc::new)));
    }
    out
}

/// The log. Appends are atomic (all of an append's events, or none) and numbered
/// without gap or duplicate across every host sharing the log.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Numbers `events` after the head, stores them and trims the log to its history,
    /// in one atomic step. With `consumed` (an outbox entry holding these events), that
    /// key is deleted in the same step; if it is already gone (another host moved it)
    /// nothing is appended and the answer is `None`. The events are taken, not copied:
    /// each becomes its [`Published`] as it is.
    async fn append(
        &self,
        events: Vec<Event>,
        consumed: Option<&str>,
    ) -> anyhow::Result<Option<Vec<Arc<Published>>>>;

    /// The events `from..=to`, in order; `None` for each one gone from the history.
    async fn read(&self, from: u64, to: u64) -> anyhow::Result<Vec<Option<Arc<Published>>>>;

    /// The last sequence number assigned, read from the log's storage (so also a check
    /// that it answers).
    async fn head(&self) -> anyhow::Result<u64>;

    /// The head as this host learns of it (its own appends, and other hosts' through
    /// the log's notifications), for waiting on new events without polling. It may go
    /// back only if the storage lost acknowledged data.
    fn heads(&self) -> watch::Receiver<u64>;
}

/// Opens the log kept in the `default` store, `kv`, configured by `config`, keeping the
/// last `history` events.
pub async fn open(
    config: &StoreConfig,
    kv: Arc<dyn KvBackend>,
    history: u64,
) -> anyhow::Result<Arc<dyn EventLog>> {
    Ok(match config {
        StoreConfig::Sqlite { .. } => Arc::new(embedded::KvLog::open(kv, history).await?),
        StoreConfig::Redis { url } => Arc::new(redis::RedisLog::open(url, history).await?),
    })
}

/// Parses the head kept at `meta/seq` (a decimal string; missing = 0).
pub fn parse_head(bytes: Option<&[u8]>) -> anyhow::Result<u64> {
    match bytes {
        None => Ok(0),
        Some(b) => Ok(std::str::from_utf8(b)?.trim().parse()?),
    }
}

#[cfg(test)]
pub(crate) mod tests_common {
    use super::*;

    /// `n` distinct unsequenced events.
    pub fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::new(
                    "task_update",
                    "celery:tasks",
                    i as u64,
                    serde_json::json!({ "i": i }),
                )
            })
            .collect()
    }

    pub fn seqs(p: &[Arc<Published>]) -> Vec<u64> {
        p.iter().map(|p| p.event.seq).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_a_decimal_string() {
        assert_eq!(parse_head(None).unwrap(), 0);
        assert_eq!(parse_head(Some(b"42")).unwrap(), 42);
        assert!(parse_head(Some(&7i64.to_le_bytes())).is_err());
    }

    #[test]
    fn a_published_event_is_numbered_in_its_json() {
        let e = Event::new("x", "t", 1, serde_json::json!({}));
        let p = Published::new(e, 9).unwrap();
        assert!(p.json.starts_with(r#"{"seq":9,"#), "{}", p.json);
        assert_eq!(Published::parse(p.json.clone()).unwrap().event.seq, 9);
    }

    #[test]
    fn readers_get_each_task_update_followed_by_its_job_notification() {
        let task = vigil_core::task::Task::new("j1");
        let update = Published::new(Event::task_update(&task, 5), 3).unwrap();
        let other = Published::new(
            Event::new("queue_stats", "celery:queues", 5, serde_json::json!({})),
            4,
        )
        .unwrap();
        let read = with_derived(vec![Arc::new(update), Arc::new(other)]);
        let kinds: Vec<(&str, u64)> = read
            .iter()
            .map(|p| (p.event.kind.as_str(), p.event.seq))
            .collect();
        assert_eq!(
            kinds,
            [("task_update", 3), ("job-queued", 3), ("queue_stats", 4)]
        );
        assert!(
            read[1].json.starts_with(r#"{"seq":3,"type":"job-queued""#),
            "{}",
            read[1].json
        );
    }
}
