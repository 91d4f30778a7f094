//! Against a real `redis-server` started by the test; two `RedisLog`s on one database
//! stand for two hosts.

use std::collections::BTreeSet;

use super::*;
use crate::tests_common::{events, seqs};
use vigil_redis_test::RedisServer;

async fn wait_for_head(heads: &mut watch::Receiver<u64>, at_least: u64) {
    tokio::time::timeout(Duration::from_secs(10), heads.wait_for(|h| *h >= at_least))
        .await
        .expect("head learnt in time")
        .unwrap();
}

#[tokio::test]
async fn appends_keep_spins_layout_and_read_back_on_another_host() {
    let server = RedisServer::start();
    let a = RedisLog::open(&server.url(), 3).await.unwrap();
    let got = a.append(events(2), None).await.unwrap().unwrap();
    assert_eq!(seqs(&got), [1, 2]);
    // What a component reads through the key-value interface: the JSON at
    // `event/<seq>` (the same key `keys::event` makes) and a decimal head.
    let stored = server.command(&format!("GET {}", keys::event(2)));
    assert!(
        stored.ends_with(&format!("{}\r\n", got[1].json)),
        "{stored}"
    );
    assert_eq!(server.command("GET meta/seq"), "$1\r\n2\r\n");
    a.append(events(3), None).await.unwrap();
    let b = RedisLog::open(&server.url(), 3).await.unwrap();
    assert_eq!(b.head().await.unwrap(), 5);
    let read = b.read(1, 5).await.unwrap();
    assert_eq!(
        read.iter().map(Option::is_some).collect::<Vec<_>>(),
        [false, false, true, true, true]
    );
    assert_eq!(
        read[4].as_ref().unwrap().json,
        a.read(5, 5).await.unwrap()[0].as_ref().unwrap().json
    );
    assert_eq!(
        read[4].as_ref().unwrap().event,
        a.read(5, 5).await.unwrap()[0].as_ref().unwrap().event
    );
}

#[tokio::test]
async fn two_hosts_appending_at_once_number_every_event_exactly_once() {
    let server = RedisServer::start();
    let a = Arc::new(RedisLog::open(&server.url(), 100_000).await.unwrap());
    let b = Arc::new(RedisLog::open(&server.url(), 100_000).await.unwrap());
    let (mut heads_a, mut heads_b) = (a.heads(), b.heads());
    let run = |log: Arc<RedisLog>| async move {
        let mut mine = Vec::new();
        for i in 0..150 {
            mine.extend(seqs(
                &log.append(events(1 + i % 3), None).await.unwrap().unwrap(),
            ));
        }
        mine
    };
    let (x, y) = tokio::join!(run(a.clone()), run(b.clone()));
    let total = (x.len() + y.len()) as u64;
    let all: BTreeSet<u64> = x.iter().chain(&y).copied().collect();
    assert_eq!(all.len() as u64, total, "no number given twice");
    assert_eq!(all, (1..=total).collect(), "no gap");
    // Each host learns the other's appends from the channel, without polling.
    wait_for_head(&mut heads_a, total).await;
    wait_for_head(&mut heads_b, total).await;
    let read = a.read(1, total).await.unwrap();
    assert!(read
        .iter()
        .enumerate()
        .all(|(i, p)| p.as_ref().unwrap().event.seq == i as u64 + 1));
}

#[tokio::test]
async fn an_outbox_entry_raced_for_by_two_hosts_is_appended_once() {
    let server = RedisServer::start();
    let a = Arc::new(RedisLog::open(&server.url(), 100).await.unwrap());
    let b = Arc::new(RedisLog::open(&server.url(), 100).await.unwrap());
    for i in 0..50 {
        let key = format!("outbox/{i:04}");
        server.command(&format!("SET {key} x"));
        let batch = events(2);
        let (ra, rb) = tokio::join!(
            a.append(batch.clone(), Some(&key)),
            b.append(batch, Some(&key))
        );
        let won = [ra.unwrap(), rb.unwrap()].into_iter().flatten().count();
        assert_eq!(won, 1, "entry {key}");
        assert_eq!(server.command(&format!("EXISTS {key}")), ":0\r\n");
    }
    assert_eq!(a.head().await.unwrap(), 100);
}

#[tokio::test]
async fn heads_follow_again_after_a_redis_restart() {
    let server = RedisServer::start();
    let a = RedisLog::open(&server.url(), 100).await.unwrap();
    let b = RedisLog::open(&server.url(), 100).await.unwrap();
    let mut heads_b = b.heads();
    a.append(events(2), None).await.unwrap();
    wait_for_head(&mut heads_b, 2).await;
    server.kill();
    assert!(a.append(events(1), None).await.is_err(), "Redis is away");
    server.restart();
    // The appends before the kill survived (AOF, appendfsync always), and b follows
    // again once it has re-subscribed.
    let mut appended = None;
    for _ in 0..50 {
        if let Ok(Some(p)) = a.append(events(1), None).await {
            appended = Some(seqs(&p));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(appended, Some(vec![3]));
    wait_for_head(&mut heads_b, 3).await;
    assert_eq!(b.read(1, 3).await.unwrap().iter().flatten().count(), 3);
}

#[test]
fn templates_leave_the_number_to_the_script() {
    let e = &mut events(1)[0];
    e.seq = 5; // a number the component set is replaced, not kept
    let t = template(e).unwrap();
    assert!(t.starts_with(r#","type":"task_update""#), "{t}");
    let json = format!(r#"{{"seq":12{t}"#);
    assert_eq!(
        Published::parse(json).unwrap().event,
        Event {
            seq: 12,
            ..e.clone()
        }
    );
}
