//! The log inside the key-value store (the embedded SQLite default), for one host:
//! the host holds the head and numbers appends one at a time; each append is one
//! atomic batch (events, head, trimmed entries, the consumed outbox key).
//!
//! One host per store: two hosts on one SQLite file would number independently.
//! Components under `spin up` on the same file only write outbox entries, which the
//! host's relay appends here.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{watch, Mutex};
use vigil_core::event::Event;
use vigil_core::keys;
use vigil_kv::KvBackend;

use crate::cache::Recent;
use crate::{parse_head, EventLog, Published};

/// The log in a key-value store.
pub struct KvLog {
    kv: Arc<dyn KvBackend>,
    history: u64,
    /// The head; held while appending, so appends are numbered one after the other.
    seq: Mutex<u64>,
    recent: Recent,
    heads: watch::Sender<u64>,
}

impl KvLog {
    /// The log in `kv`, continuing from the head stored there.
    pub async fn open(kv: Arc<dyn KvBackend>, history: u64) -> anyhow::Result<Self> {
        let head = parse_head(kv.get(keys::SEQ_KEY).await?.as_deref())?;
        Ok(Self {
            kv,
            history: history.max(1),
            seq: Mutex::new(head),
            recent: Recent::new(history.max(1)),
            heads: watch::Sender::new(head),
        })
    }
}

#[async_trait]
impl EventLog for KvLog {
    async fn append(
        &self,
        events: Vec<Event>,
        consumed: Option<&str>,
    ) -> anyhow::Result<Option<Vec<Arc<Published>>>> {
        let mut seq = self.seq.lock().await;
        let token = self.kv.sync_token();
        if let Some(key) = consumed {
            // Only this host moves outbox entries of this store (see the module docs).
            if !self.kv.exists(key).await? {
                return Ok(None);
            }
        }
        let first = *seq + 1;
        let out = events
            .into_iter()
            .zip(first..)
            .map(|(e, s)| Published::new(e, s).map(Arc::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let head = *seq + out.len() as u64;
        let mut sets: Vec<(String, Vec<u8>)> = out
            .iter()
            .map(|p| (keys::event(p.event.seq), p.json.clone().into_bytes()))
            .collect();
        sets.push((keys::SEQ_KEY.to_owned(), head.to_string().into_bytes()));
        let mut deletes: Vec<String> = (first..=head)
            .filter(|s| *s > self.history)
            .map(|s| keys::event(s - self.history))
            .collect();
        deletes.extend(consumed.map(str::to_owned));
        self.kv.write_batch(sets, deletes).await?;
        // Durable before anyone hears of it: a follower never hands out a number that a
        // crash could give to another event (and the writes before it, the records the
        // events announce, commit with it).
        self.kv.sync(token).await?;
        *seq = head;
        self.recent.insert(&out);
        self.heads.send_replace(head);
        Ok(Some(out))
    }

    async fn read(&self, from: u64, to: u64) -> anyhow::Result<Vec<Option<Arc<Published>>>> {
        let mut got = self.recent.get(from, to, *self.heads.borrow());
        let missing: Vec<String> = (from..=to)
            .zip(&got)
            .filter(|(_, p)| p.is_none())
            .map(|(s, _)| keys::event(s))
            .collect();
        if missing.is_empty() {
            return Ok(got);
        }
        let mut values = self.kv.get_many(&missing).await?.into_iter();
        for slot in got.iter_mut().filter(|p| p.is_none()) {
            if let Some(bytes) = values.next().flatten() {
                *slot = Some(Arc::new(Published::parse(String::from_utf8(bytes)?)?));
            }
        }
        Ok(got)
    }

    async fn head(&self) -> anyhow::Result<u64> {
        parse_head(self.kv.get(keys::SEQ_KEY).await?.as_deref())
    }

    fn heads(&self) -> watch::Receiver<u64> {
        self.heads.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_common::{events, seqs};
    use vigil_kv::sqlite::SqliteStore;

    async fn log(dir: &tempfile::TempDir, history: u64) -> (Arc<dyn KvBackend>, KvLog) {
        let kv: Arc<dyn KvBackend> =
            Arc::new(SqliteStore::open(&dir.path().join("kv.db"), "default").unwrap());
        let log = KvLog::open(kv.clone(), history).await.unwrap();
        (kv, log)
    }

    #[tokio::test]
    async fn numbers_continue_and_history_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let (kv, log) = log(&dir, 3).await;
        let mut heads = log.heads();
        let got = log.append(events(2), None).await.unwrap().unwrap();
        assert_eq!(seqs(&got), [1, 2]);
        assert_eq!(*heads.borrow_and_update(), 2);
        log.append(events(3), None).await.unwrap();
        assert_eq!(log.head().await.unwrap(), 5);
        assert_eq!(
            kv.get(keys::SEQ_KEY).await.unwrap().as_deref(),
            Some(&b"5"[..])
        );
        let read = log.read(1, 5).await.unwrap();
        assert_eq!(
            read.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, false, true, true, true]
        );
        // A new log on the same store (a restart) continues the numbering.
        drop(log);
        let (_, again) = self::log(&dir, 3).await;
        assert_eq!(
            seqs(&again.append(events(1), None).await.unwrap().unwrap()),
            [6]
        );
        assert_eq!(
            again.read(5, 5).await.unwrap()[0]
                .as_ref()
                .unwrap()
                .event
                .seq,
            5
        );
    }

    #[tokio::test]
    async fn a_consumed_entry_is_appended_once() {
        let dir = tempfile::tempdir().unwrap();
        let (kv, log) = log(&dir, 100).await;
        kv.set("outbox/1", b"[]").await.unwrap();
        assert!(log
            .append(events(2), Some("outbox/1"))
            .await
            .unwrap()
            .is_some());
        assert!(!kv.exists("outbox/1").await.unwrap());
        assert!(log
            .append(events(2), Some("outbox/1"))
            .await
            .unwrap()
            .is_none());
        assert_eq!(log.head().await.unwrap(), 2);
    }
}
