//! The parking lot's rules, without a host.

use super::*;
use std::time::Instant;

fn park(after: u64, interest: Interest) -> Park {
    Park {
        after,
        timeout_ms: 1000,
        principal: "admin:a".into(),
        interest,
    }
}

fn fired(t: &Ticket) -> bool {
    *t.wake.fired.borrow()
}

#[test]
fn an_event_wakes_the_groups_it_may_concern_once_each() {
    let lot = Arc::new(ParkingLot::default());
    let job = |after| park(after, Interest::Subject("j1".into()));
    let a = lot.park("GET /j1/wait", &job(5), true).unwrap();
    let b = lot.park("GET /j1/wait", &job(7), true).unwrap();
    let other = park(5, Interest::Subject("j2".into()));
    let c = lot.park("GET /j2/wait", &other, true).unwrap();
    let feed = park(5, Interest::Topics("commands".into()));
    let d = lot.park("GET /events", &feed, true).unwrap();
    assert_eq!(lot.parked(), 4);
    lot.observe([(6, "celery:tasks", Some("j1"))]);
    assert!(fired(&a) && fired(&b), "one group: both members woken");
    assert!(Arc::ptr_eq(&a.wake, &b.wake), "they share one answer");
    assert!(!fired(&c) && !fired(&d));
    lot.observe([(7, "commands", None)]);
    assert!(fired(&d) && !fired(&c));
    drop((a, b, d));
    assert_eq!(lot.parked(), 1);
    drop(c);
    let lot = lot.lot.lock().unwrap();
    assert!(lot.groups.is_empty() && lot.by_subject.is_empty() && lot.general.is_empty());
}

#[tokio::test]
async fn events_up_to_after_do_not_wake_and_a_stale_group_is_asked_again_once() {
    let lot = Arc::new(ParkingLot::default());
    let t = lot.park("k", &park(10, Interest::Any), true).unwrap();
    lot.observe([(9, "x", None), (10, "x", None)]);
    assert!(!fired(&t));
    lot.observe([(11, "x", None)]);
    assert!(fired(&t) && !t.wake.was_stale());
    // Members parking again after the lot saw 11 gather in one group, asked once.
    let again: Vec<_> = (0..3)
        .map(|_| lot.park("k", &park(10, Interest::Any), true).unwrap())
        .collect();
    assert!(again.iter().all(|t| Arc::ptr_eq(&t.wake, &again[0].wake)));
    assert!(!fired(&again[0]));
    tokio::time::sleep(GATHER * 5).await;
    assert!(fired(&again[0]) && again[0].wake.was_stale());
    let t = lot.park("k", &park(10, Interest::Any), false).unwrap();
    tokio::time::sleep(GATHER * 5).await;
    assert!(!fired(&t), "no check asked");
}

#[test]
fn closing_wakes_everyone() {
    let lot = Arc::new(ParkingLot::default());
    let t = lot.park("k", &park(3, Interest::Subject("j".into())), false);
    lot.close();
    assert!(lot.is_closed() && fired(&t.unwrap()));
    assert!(lot.lot.lock().unwrap().by_subject.is_empty());
}

#[test]
fn a_client_gone_frees_its_place_and_the_bound_refuses_past_it() {
    let lot = Arc::new(ParkingLot::default());
    let tickets: Vec<_> = (0..MAX_PARKED)
        .map(|i| lot.park(&format!("k{}", i % 7), &park(0, Interest::Any), false))
        .collect::<Result<_, _>>()
        .unwrap();
    let e = lot.park("k", &park(0, Interest::Any), true).err().unwrap();
    assert_eq!(e.status, 503);
    drop(tickets);
    assert_eq!(lot.parked(), 0);
    assert!(lot.lot.lock().unwrap().groups.is_empty());
}

#[test]
fn waits_of_a_group_ending_together_share_a_timeout_answer() {
    let t = Timeouts::default();
    let at = Instant::now() + Duration::from_secs(60);
    let window = SHARE_WINDOW.as_millis() as u64;
    // Both in one window (unless `at` is within a millisecond of its end: move past it).
    let at =
        at + Duration::from_millis(window - (at - t.epoch_for_tests()).as_millis() as u64 % window);
    let a = t.cell("g", at);
    assert!(Arc::ptr_eq(&a, &t.cell("g", at + SHARE_WINDOW / 2)));
    assert!(!Arc::ptr_eq(&a, &t.cell("g", at + SHARE_WINDOW)));
    assert!(!Arc::ptr_eq(&a, &t.cell("h", at)));
    drop(a);
    for i in 0..1000u32 {
        t.cell("g", at + Duration::from_secs(u64::from(i)));
    }
    assert!(t.len() <= 256, "unused entries are swept: {}", t.len());
}
