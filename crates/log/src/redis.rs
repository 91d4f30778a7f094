//! The log in Redis, shared by every host on the database.
//!
//! An append is one Lua script ([`APPEND`]): it checks that the consumed outbox entry
//! still exists, `INCRBY`s `meta/seq` by the number of events, `SET`s their
//! `event/<seq>` keys, deletes the entries past the history and the outbox entry, and
//! `PUBLISH`es the new head on [`HEAD_CHANNEL`]. Redis runs a script whole or not at
//! all, and other clients see nothing in between, so two hosts racing for one entry, or
//! a host killed mid-append, can neither lose, duplicate nor skip a number. With AOF on,
//! the script's writes are logged as one `MULTI`/`EXEC`, so a restart restores all of an
//! append or none of it.
//!
//! Each host subscribes to [`HEAD_CHANNEL`] and follows the head in [`EventLog::heads`];
//! after every (re)subscription it reads `meta/seq` once, for what it missed while away.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Client, Script};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;
use vigil_core::event::Event;
use vigil_core::keys;

use crate::cache::Recent;
use crate::{parse_head, EventLog, Published};

/// The pub/sub channel each append publishes its new head on (a channel, not a key:
/// Redis keeps the two apart).
pub const HEAD_CHANNEL: &str = "vigil/log-head";
/// Entries read per `MGET`: large enough for a catch-up to take few round trips, small
/// enough that one answer stays well under a megabyte.
const READ_CHUNK: u64 = 512;
/// First wait before re-subscribing after the connection was lost; doubled per failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between re-subscription attempts: a Redis back from a restart is
/// followed again within this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// `KEYS[1]` = `meta/seq`, `KEYS[2]` = the consumed outbox entry (when `ARGV[3]` is
/// "1"); `ARGV[1]` = history, `ARGV[2]` = channel, `ARGV[4]` = the event key prefix,
/// `ARGV[5..]` = each event's JSON after its `{"seq":N` opening. Returns the new head,
/// or -1 when the entry was already moved.
const APPEND: &str = r#"
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local n = #ARGV - 4
local head = redis.call('INCRBY', KEYS[1], n)
local history = tonumber(ARGV[1])
for i = 1, n do
  local s = head - n + i
  redis.call('SET', ARGV[4] .. string.format('%020d', s), '{"seq":' .. string.format('%d', s) .. ARGV[4 + i])
  if s > history then
    redis.call('DEL', ARGV[4] .. string.format('%020d', s - history))
  end
end
if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
if n > 0 then redis.call('PUBLISH', ARGV[2], head) end
return head
"#;

/// The log in a Redis database.
pub struct RedisLog {
    conn: ConnectionManager,
    append: Script,
    history: u64,
    recent: Arc<Recent>,
    heads: Arc<watch::Sender<u64>>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for RedisLog {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl RedisLog {
    /// Connects to `url` and starts following the head.
    pub async fn open(url: &str, history: u64) -> anyhow::Result<Self> {
        let (client, mut conn) = vigil_kv::redis::connect(url).await?;
        let head = parse_head(
            conn.get::<_, Option<Vec<u8>>>(keys::SEQ_KEY)
                .await?
                .as_deref(),
        )?;
        let heads = Arc::new(watch::Sender::new(head));
        let recent = Arc::new(Recent::new(history.max(1)));
        let listener = tokio::spawn(follow(client, conn.clone(), recent.clone(), heads.clone()));
        Ok(Self {
            conn,
            append: Script::new(APPEND),
            history: history.max(1),
            recent,
            heads,
            listener,
        })
    }

    async fn fetch(&self, from: u64, to: u64) -> anyhow::Result<Vec<Option<Arc<Published>>>> {
        let keys: Vec<String> = (from..=to).map(keys::event).collect();
        let values: Vec<Option<String>> = ::redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn.clone())
            .await?;
        let got = values
            .into_iter()
            .map(|v| v.map(Published::parse).transpose().map(|p| p.map(Arc::new)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.recent
            .insert(&got.iter().flatten().cloned().collect::<Vec<_>>());
        Ok(got)
    }
}

/// The JSON of `event` after its `{"seq":0` opening (the script puts the number in).
fn template(event: &mut Event) -> anyhow::Result<String> {
    event.seq = 0;
    let json = serde_json::to_string(event)?;
    json.strip_prefix(r#"{"seq":0"#)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("an event's JSON does not start with its seq"))
}

#[async_trait]
impl EventLog for RedisLog {
    async fn append(
        &self,
        mut events: Vec<Event>,
        consumed: Option<&str>,
    ) -> anyhow::Result<Option<Vec<Arc<Published>>>> {
        let templates = events
            .iter_mut()
            .map(template)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut call = self.append.key(keys::SEQ_KEY);
        call.key(consumed.unwrap_or(""))
            .arg(self.history)
            .arg(HEAD_CHANNEL)
            .arg(if consumed.is_some() { "1" } else { "0" })
            .arg(keys::EVENT_PREFIX);
        for t in &templates {
            call.arg(t);
        }
        let head: i64 = call.invoke_async(&mut self.conn.clone()).await?;
        let Ok(head) = u64::try_from(head) else {
            return Ok(None);
        };
        let first = head + 1 - events.len() as u64;
        let out: Vec<Arc<Published>> = events
            .into_iter()
            .zip(templates)
            .zip(first..)
            .map(|((event, t), seq)| {
                let event = Event { seq, ..event };
                Arc::new(Published {
                    event,
                    json: format!(r#"{{"seq":{seq}{t}"#),
                })
            })
            .collect();
        self.recent.insert(&out);
        observe(head, false, &self.recent, &self.heads);
        Ok(Some(out))
    }

    async fn read(&self, from: u64, to: u64) -> anyhow::Result<Vec<Option<Arc<Published>>>> {
        let mut got = self.recent.get(from, to, *self.heads.borrow());
        for start in (from..=to).step_by(READ_CHUNK as usize) {
            let end = to.min(start + READ_CHUNK - 1);
            let slots = &mut got[(start - from) as usize..=(end - from) as usize];
            if slots.iter().all(Option::is_some) {
                continue;
            }
            let fetched = self.fetch(start, end).await?;
            for (slot, p) in slots.iter_mut().zip(fetched) {
                if slot.is_none() {
                    *slot = p;
                }
            }
        }
        Ok(got)
    }

    async fn head(&self) -> anyhow::Result<u64> {
        let bytes: Option<Vec<u8>> = self.conn.clone().get(keys::SEQ_KEY).await?;
        parse_head(bytes.as_deref())
    }

    fn heads(&self) -> watch::Receiver<u64> {
        self.heads.subscribe()
    }
}

/// Takes in a head learnt from Redis. A newer one moves the watch on. An older one read
/// from `meta/seq` itself (`authoritative`) means Redis lost acknowledged appends (no
/// AOF, or `appendfsync` too lax): the numbers will be reused, so the cache goes and
/// the watch goes back, and clients past the head are told to reset.
fn observe(head: u64, authoritative: bool, recent: &Recent, heads: &watch::Sender<u64>) {
    heads.send_if_modified(|h| {
        if head > *h {
            *h = head;
            true
        } else if authoritative && head < *h {
            tracing::error!(was = *h, now = head, "the event log went back: Redis lost acknowledged events (run it with appendonly yes, appendfsync always)");
            recent.clear();
            *h = head;
            true
        } else {
            false
        }
    });
}

/// Follows [`HEAD_CHANNEL`] for as long as the log lives, re-subscribing after a loss.
async fn follow(
    client: Client,
    mut conn: ConnectionManager,
    recent: Arc<Recent>,
    heads: Arc<watch::Sender<u64>>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribed(&client, &mut conn, &recent, &heads).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "log head subscription failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription: reads the head once, then takes each published one until the
/// connection ends.
async fn subscribed(
    client: &Client,
    conn: &mut ConnectionManager,
    recent: &Recent,
    heads: &watch::Sender<u64>,
) -> anyhow::Result<()> {
    let connect = client.get_async_pubsub();
    let mut pubsub = tokio::time::timeout(vigil_kv::redis::CONNECT_TIMEOUT, connect).await??;
    pubsub.subscribe(HEAD_CHANNEL).await?;
    let head: Option<Vec<u8>> = conn.get(keys::SEQ_KEY).await?;
    observe(parse_head(head.as_deref())?, true, recent, heads);
    tracing::info!("following the event log's head in Redis");
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        match parse_head(Some(msg.get_payload_bytes())) {
            Ok(head) => observe(head, false, recent, heads),
            Err(e) => tracing::warn!(error = %e, "unreadable head on the log channel"),
        }
    }
    tracing::warn!("lost the event log's Redis subscription; re-subscribing");
    Ok(())
}

#[cfg(test)]
mod tests;
