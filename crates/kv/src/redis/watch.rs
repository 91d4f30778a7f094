//! Writes under a prefix, by any client of the Redis database, learnt from Redis
//! keyspace notifications (`PSUBSCRIBE __keyspace@<db>__:<prefix>*`).
//!
//! Notifications are off in a stock Redis: on every (re)connection the watcher turns
//! on the two classes it needs (`K`, keyspace; `$`, string commands) with
//! `CONFIG SET notify-keyspace-events`, keeping whatever else is on. Where `CONFIG` is
//! refused (some managed Redis services), it says so once: set the flags in the
//! server's configuration. Pub/sub is at-most-once, so after every (re)subscription
//! the receiver is told [`Watched::Missed`] and sweeps.

use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::Client;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{glob_escape, CONNECT_TIMEOUT};
use crate::Watched;

/// Keys queued for the receiver. When it falls this far behind, the watcher waits;
/// Redis then buffers the notifications for it (up to its pub/sub output limit, after
/// which it drops the connection, and the reconnection's `Missed` sweep covers the gap).
const QUEUE: usize = 4096;
/// First wait before re-subscribing after the connection was lost; doubled per failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between re-subscription attempts: a Redis back from a restart is
/// noticed within this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The notification classes needed: `K` (keyspace channel) and `$` (string commands,
/// which include `SET`). `A` also covers `$`.
const NEEDED: [char; 2] = ['K', '$'];

/// Starts watching `prefix`; the watcher ends when the receiver is dropped.
pub(super) fn start(
    client: Client,
    conn: ConnectionManager,
    prefix: String,
) -> mpsc::Receiver<Watched> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(client, conn, prefix, tx));
    rx
}

async fn run(
    client: Client,
    mut conn: ConnectionManager,
    prefix: String,
    tx: mpsc::Sender<Watched>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut warned = false;
    while !tx.is_closed() {
        if let Err(e) = enable_notifications(&mut conn).await {
            if !warned {
                tracing::warn!(error = %format!("{e:#}"), "Redis refused to turn on keyspace notifications; set `notify-keyspace-events` to include `K$` in its configuration, until then writes by components outside Vigil are found only by the periodic sweep");
                warned = true;
            }
        }
        match listen(&client, &prefix, &tx).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "keyspace subscription failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Adds the classes [`NEEDED`] to the server's `notify-keyspace-events`.
async fn enable_notifications(conn: &mut ConnectionManager) -> anyhow::Result<()> {
    let (_, current): (String, String) = ::redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query_async(conn)
        .await?;
    let on = |c: char| current.contains(c) || (c == '$' && current.contains('A'));
    let missing: String = NEEDED.iter().filter(|&&c| !on(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let wanted = format!("{current}{missing}");
    ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg(&wanted)
        .exec_async(conn)
        .await?;
    tracing::info!(flags = %wanted, "turned on Redis keyspace notifications");
    Ok(())
}

/// Subscribes and forwards every `set` under the prefix until the connection ends.
async fn listen(client: &Client, prefix: &str, tx: &mpsc::Sender<Watched>) -> anyhow::Result<()> {
    let mut pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await??;
    let db = client.get_connection_info().redis_settings().db();
    let channel_prefix = format!("__keyspace@{db}__:");
    pubsub
        .psubscribe(format!("{channel_prefix}{}*", glob_escape(prefix)))
        .await?;
    if tx.send(Watched::Missed).await.is_err() {
        return Ok(());
    }
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        if msg.get_payload_bytes() != b"set" {
            continue;
        }
        let Some(key) = msg.get_channel_name().strip_prefix(&channel_prefix) else {
            continue;
        };
        if tx.send(Watched::Key(key.to_owned())).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
