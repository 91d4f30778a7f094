use super::*;

fn ev(kind: WorkerEventKind, ts: f64, active: Option<u64>) -> WorkerEvent {
    WorkerEvent {
        kind,
        hostname: "w1".into(),
        timestamp: Some(ts),
        cpu: Some(10.0),
        memory: None,
        active,
        processed: Some(3),
        failed: None,
        loadavg: None,
        freq: Some(2.0),
        pid: Some(7),
        sw_ident: Some("py-celery".into()),
        sw_ver: Some("5.7.0".into()),
        sw_sys: None,
        extra: Map::new(),
    }
}

#[test]
fn lifecycle_names_each_change() {
    use WorkerChange::*;
    use WorkerEventKind::*;
    let (w, c) = apply(None, &ev(Online, 1.0, None), 0.0);
    assert_eq!((w.status, c), (WorkerStatus::Online, Registered));
    let (w, c) = apply(Some(w), &ev(Heartbeat, 2.0, Some(2)), 0.0);
    assert_eq!(
        (w.status, c, w.active),
        (WorkerStatus::Busy, StatusChanged, 2)
    );
    let (w, c) = apply(Some(w), &ev(Heartbeat, 3.0, Some(1)), 0.0);
    assert_eq!((w.status, c), (WorkerStatus::Busy, Updated));
    let (w, c) = apply(Some(w), &ev(Offline, 4.0, None), 0.0);
    assert_eq!(
        (w.status, c, w.deregistered_at, w.active),
        (WorkerStatus::Offline, Deregistered, Some(4.0), 0)
    );
    let (w, c) = apply(Some(w), &ev(Online, 9.0, None), 0.0);
    assert_eq!(
        (w.status, c, w.registered_at),
        (WorkerStatus::Online, Registered, Some(9.0))
    );
}

#[test]
fn older_events_do_not_rewind() {
    let (w, _) = apply(None, &ev(WorkerEventKind::Heartbeat, 10.0, Some(1)), 0.0);
    let (w, c) = apply(Some(w), &ev(WorkerEventKind::Offline, 5.0, None), 0.0);
    assert_eq!((w.status, c), (WorkerStatus::Busy, WorkerChange::Updated));
}

#[test]
fn silent_workers_expire() {
    let (w, _) = apply(None, &ev(WorkerEventKind::Online, 100.0, None), 0.0);
    assert_eq!(w.status_at(120.0, 30.0), WorkerStatus::Online);
    assert_eq!(w.status_at(131.0, 30.0), WorkerStatus::Offline);
    assert!(expire(&w, 120.0, 30.0).is_none());
    let gone = expire(&w, 131.0, 30.0).unwrap();
    assert_eq!(
        (gone.status, gone.deregistered_at),
        (WorkerStatus::Offline, Some(131.0))
    );
    assert!(expire(&gone, 500.0, 30.0).is_none(), "already offline");
    assert_eq!(w.uptime(131.0), Some(31.0));
}

#[test]
fn failed_and_processed_are_derived_from_task_events_unless_reported() {
    let (w, _) = apply(None, &ev(WorkerEventKind::Heartbeat, 1.0, Some(1)), 0.0);
    assert_eq!((w.processed, w.failed), (3, 0), "processed as reported");
    let mut w = Some(w);
    for kind in ["task-started", "task-failed", "task-started", "task-failed"] {
        w = Some(count_task_event(w, "w1", kind, 2.0));
    }
    let w = w.unwrap();
    assert_eq!(
        (w.processed, w.failed),
        (3, 2),
        "failed derived, processed reported"
    );
    assert_eq!(w.task_counts["task-failed"], 2);
    assert_eq!(
        w.heartbeat_at, 2.0,
        "a task event shows the worker is alive"
    );
    let fresh = count_task_event(None, "w9", "task-started", 5.0);
    assert_eq!(
        (fresh.id.as_str(), fresh.processed, fresh.status),
        ("w9", 1, WorkerStatus::Online)
    );
}

#[test]
fn counted_types_are_bounded() {
    let mut w = None;
    for i in 0..(MAX_COUNTED_TYPES + 5) {
        w = Some(count_task_event(w, "w1", &format!("task-custom{i}"), 1.0));
    }
    let w = w.unwrap();
    assert_eq!(w.task_counts.len(), MAX_COUNTED_TYPES + 1);
    assert_eq!(w.task_counts["other"], 5);
}

#[test]
fn keeps_software_pid_heartbeat_history_and_stats() {
    let mut w = None;
    for t in 0..15 {
        w = Some(apply(w, &ev(WorkerEventKind::Heartbeat, f64::from(t), None), 0.0).0);
    }
    let w = w.unwrap();
    assert_eq!((w.pid, w.sw_ver.as_deref()), (Some(7), Some("5.7.0")));
    assert_eq!(w.heartbeats.len(), MAX_HEARTBEATS);
    assert_eq!(w.heartbeats.last(), Some(&14.0));
    let mut stats = Map::new();
    stats.insert("pool".into(), serde_json::json!({"max-concurrency": 2}));
    let report = WorkerStats {
        hostname: "w1".into(),
        timestamp: Some(20.0),
        stats,
        queues: None,
    };
    let w = record_stats(Some(w), &report, 0.0);
    assert_eq!(w.stats.as_ref().unwrap()["pool"]["max-concurrency"], 2);
    assert_eq!((w.stats_at, w.status), (Some(20.0), WorkerStatus::Online));
}

#[test]
fn any_arrival_order_gives_the_timestamp_order_record() {
    use WorkerEventKind::*;
    let evs = [
        ev(Online, 1.0, None),
        WorkerEvent {
            cpu: Some(50.0),
            ..ev(Heartbeat, 2.0, Some(2))
        },
        WorkerEvent {
            cpu: None,
            ..ev(Heartbeat, 3.0, Some(1))
        },
        ev(Offline, 4.0, None),
        ev(Online, 5.0, None),
        WorkerEvent {
            cpu: None,
            ..ev(Heartbeat, 6.0, Some(3))
        },
        WorkerEvent {
            cpu: Some(70.0),
            ..ev(Heartbeat, 7.0, None)
        },
    ];
    let fold = |order: &[usize]| {
        order
            .iter()
            .fold(None, |w, i| Some(apply(w, &evs[*i], 0.0).0))
            .unwrap()
    };
    let in_order = fold(&[0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(
        (in_order.registered_at, in_order.cpu, in_order.active),
        (Some(5.0), Some(70.0), 3)
    );
    // Shuffled, except that no two events of the last up period arrive before its late
    // offline (then `registered_at` is only approximated).
    for order in [
        [6, 5, 4, 3, 2, 1, 0],
        [3, 0, 6, 1, 5, 2, 4],
        [5, 1, 3, 6, 0, 4, 2],
    ] {
        assert_eq!(fold(&order).public(), in_order.public(), "order {order:?}");
    }
}
