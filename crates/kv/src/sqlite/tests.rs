//! The SQLite backend against a real file.

use super::*;

fn store(name: &str) -> SqliteStore {
    SqliteStore::open(&path(name), "default").unwrap()
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

/// A fresh database file for test `name`.
fn path(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("vigil-kv-{}-{name}.db", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Long enough that no group is committed by age while a test looks.
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

#[tokio::test]
async fn writes_are_seen_at_once_and_committed_by_sync() {
    let p = path("group");
    let s = SqliteStore::open_grouped(&p, "default", HOUR).unwrap();
    // Another connection to the file sees only what is committed.
    let other = SqliteStore::open(&p, "default").unwrap();
    let token = s.sync_token();
    s.set("a", b"1").await.unwrap();
    s.compare_and_swap("b", None, b"2").await.unwrap();
    assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(other.get("a").await.unwrap(), None, "not committed yet");
    s.sync(token).await.unwrap();
    assert_eq!(other.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(other.get("b").await.unwrap().as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn a_group_nobody_syncs_commits_by_age() {
    let p = path("age");
    let s = SqliteStore::open(&p, "default").unwrap();
    let other = SqliteStore::open(&p, "default").unwrap();
    s.set("a", b"1").await.unwrap();
    // Another writer of the file waits for the group's lock, at most about its age.
    let started = std::time::Instant::now();
    other.set("b", b"2").await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(other.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    // Nobody syncs `other`'s group: its age commits it (well within a second, however
    // busy the machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while s.get("b").await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "never committed");
        std::thread::sleep(MAX_TX_AGE);
    }
}

#[tokio::test]
async fn a_failing_write_undoes_only_itself() {
    let p = path("undo");
    let s = SqliteStore::open_grouped(&p, "default", HOUR).unwrap();
    let token = s.sync_token();
    s.set("kept", b"1").await.unwrap();
    s.set("text", b"abc").await.unwrap();
    assert!(s.increment("text", 1).await.is_err());
    s.sync(token).await.unwrap();
    let other = SqliteStore::open(&p, "default").unwrap();
    assert_eq!(other.get("kept").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        other.get("text").await.unwrap().as_deref(),
        Some(&b"abc"[..])
    );
}

#[tokio::test]
async fn dropping_the_store_commits_its_group() {
    let p = path("drop");
    let s = SqliteStore::open_grouped(&p, "default", HOUR).unwrap();
    s.set("a", b"1").await.unwrap();
    drop(s);
    let other = SqliteStore::open(&p, "default").unwrap();
    assert_eq!(other.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
}
