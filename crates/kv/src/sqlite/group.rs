//! Group commit: the store's one connection keeps a write transaction open across
//! operations — and across requests — and commits it when someone needs durability
//! ([`Group::sync`]), when it holds [`MAX_TX_WRITES`] writes, or at the latest
//! [`MAX_TX_AGE`] after it began. A commit is where SQLite's cost is (its locks, the
//! WAL frames of every page touched, checkpoints): one per request instead of one per
//! write, and a page written by several writes of the group is written once.
//!
//! Everything runs on the one connection, under one lock, so every operation sees
//! every earlier one, committed or not, and compare-and-swap stays atomic. The open
//! transaction holds SQLite's write lock (`BEGIN IMMEDIATE`), so other processes on the
//! file (`spin up`) write between groups: they wait at most a group's lifetime, well
//! within the busy timeout. A failed commit rolls the whole group back: every caller
//! whose operations it held finds out from [`Group::sync`] (the failure count moved
//! since its token), and must not acknowledge anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::SyncToken;

/// Longest a group stays open when nobody syncs (writes by callers that never answer
/// anyone): bounds how long another process waits for the file's write lock, and what
/// a crash can take of writes nobody was told about.
pub const MAX_TX_AGE: Duration = Duration::from_millis(10);
/// Most writes one group holds: bounds the WAL a commit writes and a rollback undoes.
pub const MAX_TX_WRITES: usize = 10_000;

/// The connection and its open group.
pub(super) struct Group {
    state: Mutex<State>,
    /// How long a group may stay open ([`MAX_TX_AGE`] but in tests).
    max_age: Duration,
    /// Commits that failed so far; a [`SyncToken`] is this count when it was taken.
    failures: AtomicU64,
}

struct State {
    conn: Connection,
    /// The open group: when it began and how many writes it holds.
    open: Option<(Instant, usize)>,
}

impl Group {
    /// Wraps `conn`, and starts the thread that commits groups open longer than
    /// `max_age`.
    pub(super) fn new(conn: Connection, max_age: Duration) -> Arc<Self> {
        let group = Arc::new(Self {
            state: Mutex::new(State { conn, open: None }),
            max_age,
            failures: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&group);
        let spawned = std::thread::Builder::new()
            .name("vigil-sqlite-commit".into())
            .spawn(move || commit_stale_groups(weak));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no commit thread: groups commit only when synced or full");
        }
        group
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // SQLite stays consistent whatever panicked while the lock was held.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs a read (inside the open group, if any: it sees every earlier write).
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        f(&self.lock().conn)
    }

    /// Runs a write of one statement in the open group (beginning one if needed); a
    /// failing statement changes nothing (SQLite undoes a statement whole).
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.in_group(false, f)
    }

    /// Runs a write of several statements in the open group, all or nothing: a failure
    /// undoes what `f` did and leaves the rest of the group as it was.
    pub(super) fn write_all<T>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.in_group(true, f)
    }

    fn in_group<T>(
        &self,
        savepoint: bool,
        f: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut st = self.lock();
        if st.open.is_none() {
            run(&st.conn, "BEGIN IMMEDIATE")?;
            st.open = Some((Instant::now(), 0));
        }
        if savepoint {
            run(&st.conn, "SAVEPOINT op")?;
        }
        let result = f(&st.conn);
        if savepoint {
            let end = match &result {
                Ok(_) => run(&st.conn, "RELEASE op"),
                Err(_) => {
                    run(&st.conn, "ROLLBACK TO op").and_then(|()| run(&st.conn, "RELEASE op"))
                }
            };
            if let Err(e) = end {
                tracing::error!(error = %format!("{e:#}"), "ending a write's savepoint failed");
            }
        }
        self.check_still_open(&mut st);
        let full = st.open.as_mut().is_some_and(|(_, n)| {
            *n += 1;
            *n >= MAX_TX_WRITES
        });
        if full {
            self.commit(&mut st)?;
        }
        result
    }

    /// SQLite rolls a whole transaction back by itself on some errors (disk full, I/O):
    /// then the group is gone and counts as a failed commit.
    fn check_still_open(&self, st: &mut State) {
        if st.open.is_some() && st.conn.is_autocommit() {
            tracing::error!("SQLite rolled back a group of writes after an error");
            st.open = None;
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn commit(&self, st: &mut State) -> anyhow::Result<()> {
        if st.open.take().is_none() {
            return Ok(());
        }
        if let Err(e) = run(&st.conn, "COMMIT") {
            self.failures.fetch_add(1, Ordering::SeqCst);
            if !st.conn.is_autocommit() {
                let _ = run(&st.conn, "ROLLBACK");
            }
            return Err(e.context("committing a group of writes"));
        }
        Ok(())
    }

    /// The token [`Group::sync`] checks.
    pub(super) fn token(&self) -> SyncToken {
        SyncToken(self.failures.load(Ordering::SeqCst))
    }

    /// Commits the open group, if any; fails if a commit failed since `token`.
    pub(super) fn sync(&self, token: SyncToken) -> anyhow::Result<()> {
        let committed = self.commit(&mut self.lock());
        if self.token() != token {
            committed?;
            anyhow::bail!("a group of writes failed to commit; they were rolled back");
        }
        committed
    }

    /// Commits the open group if it began more than `age` ago.
    fn commit_if_older(&self, age: Duration) {
        let mut st = self.lock();
        if st.open.is_some_and(|(since, _)| since.elapsed() >= age) {
            if let Err(e) = self.commit(&mut st) {
                tracing::error!(error = %format!("{e:#}"), "committing a stale group failed");
            }
        }
    }
}

/// Runs one statement without parameters (prepared once, then from the cache).
fn run(conn: &Connection, sql: &str) -> anyhow::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

impl Drop for Group {
    /// A store going away commits what it holds: a closed connection would roll it back.
    fn drop(&mut self) {
        let st = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if st.open.take().is_some() {
            if let Err(e) = run(&st.conn, "COMMIT") {
                tracing::error!(error = %format!("{e:#}"), "committing the last group failed");
            }
        }
    }
}

/// Commits groups nobody synced, every half of their longest age, for as long as the
/// store lives.
fn commit_stale_groups(group: Weak<Group>) {
    while let Some(g) = group.upgrade() {
        g.commit_if_older(g.max_age);
        let pause = g.max_age / 2;
        drop(g);
        std::thread::sleep(pause);
    }
}
