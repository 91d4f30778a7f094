//! Listings against a brute-force answer over every record, paging, and bounds.

use vigil_core::task::{Task, TaskState};

use super::*;
use crate::memory::MemoryKv;
use crate::record::Stored;
use crate::testing::{events, ingest, lifecycle};

fn filled(tasks: usize) -> MemoryKv {
    let kv = MemoryKv::new();
    for b in lifecycle(tasks).chunks(100) {
        ingest(&kv, b);
    }
    kv
}

fn every_task(kv: &MemoryKv) -> Vec<Task> {
    kv.keys()
        .iter()
        .filter(|k| k.starts_with("task/"))
        .filter_map(|k| {
            Stored::decode(k, &kv.get(k).unwrap().unwrap())
                .unwrap()
                .task
        })
        .collect()
}

/// The answer by reading everything: filter, sort by (field, id), page.
fn brute(kv: &MemoryKv, req: &Request) -> Vec<String> {
    let mut all: Vec<Task> = every_task(kv)
        .into_iter()
        .filter(|t| req.filters.matches(t))
        .filter(|t| req.sort.field == "name" || sets::field(t, &req.sort.field).is_some())
        .collect();
    all.sort_by(|a, b| {
        let key = |t: &Task| match req.sort.field.as_str() {
            "name" => (t.name.clone().unwrap_or_default(), t.state_at),
            f => (String::new(), sets::field(t, f).unwrap()),
        };
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then(a.id.cmp(&b.id))
    });
    if req.sort.desc {
        all.reverse();
    }
    let ids = all.into_iter().map(|t| t.id).skip(req.offset);
    ids.take(req.limit).collect()
}

fn req(filters: Filters, field: &str, desc: bool, limit: usize) -> Request {
    Request {
        filters,
        sort: Sort {
            field: field.into(),
            desc,
        },
        limit,
        offset: 0,
        cursor: None,
    }
}

fn ids(l: &Listing) -> Vec<String> {
    l.tasks.iter().map(|t| t.id.clone()).collect()
}

#[test]
fn every_filter_and_order_matches_brute_force() {
    let kv = filled(600);
    let q = |s: &str| Some(s.to_owned());
    let filters = [
        Filters::default(),
        Filters {
            state: Some(TaskState::Success),
            ..Filters::default()
        },
        Filters {
            state: Some(TaskState::Started),
            queue: q("q1"),
            ..Filters::default()
        },
        Filters {
            worker: q("w2"),
            state: Some(TaskState::Failure),
            ..Filters::default()
        },
        Filters {
            owner: q("o1"),
            state: Some(TaskState::Received),
            ..Filters::default()
        },
        Filters {
            name: q("n3"),
            owner: q("o0"),
            ..Filters::default()
        },
        Filters {
            received_after: Some(1100.0),
            received_before: Some(1150.0),
            ..Filters::default()
        },
        Filters {
            search: q("t02"),
            ..Filters::default()
        },
    ];
    for f in filters {
        for field in sets::SORT_FIELDS {
            for desc in [true, false] {
                let r = req(f.clone(), field, desc, 40);
                let got = list(&kv, &r).unwrap();
                assert_eq!(ids(&got), brute(&kv, &r), "{f:?} by {field} desc={desc}");
            }
        }
    }
}

#[test]
fn totals_are_exact_where_a_counter_answers() {
    let kv = filled(600);
    let all = every_task(&kv);
    let count = |p: &dyn Fn(&Task) -> bool| all.iter().filter(|t| p(t)).count() as u64;
    let f = Filters {
        state: Some(TaskState::Success),
        queue: Some("q2".into()),
        ..Filters::default()
    };
    let l = list(&kv, &req(f, "state_at", true, 5)).unwrap();
    let want = count(&|t| t.state == TaskState::Success && t.queue.as_deref() == Some("q2"));
    assert_eq!((l.total, l.total_exact), (want, true));
    let f = Filters {
        worker: Some("w1".into()),
        state: Some(TaskState::Success),
        ..Filters::default()
    };
    let l = list(&kv, &req(f, "state_at", true, 5)).unwrap();
    assert!(!l.total_exact && l.total >= l.tasks.len() as u64);
    let f = Filters {
        worker: Some("w1".into()),
        state: Some(TaskState::Success),
        ..Filters::default()
    };
    let l = list(&kv, &req(f, "state_at", true, 1000)).unwrap();
    let want = count(&|t| t.state == TaskState::Success && t.worker.as_deref() == Some("w1"));
    assert_eq!(
        (l.total, l.total_exact, l.next.is_none()),
        (want, true, true),
        "walked to the end"
    );
}

#[test]
fn cursor_pages_have_no_gaps_or_duplicates_while_tasks_arrive() {
    let kv = filled(500);
    let mut before: Vec<String> = every_task(&kv).into_iter().map(|t| t.id).collect();
    before.sort();
    let mut seen: Vec<String> = Vec::new();
    let mut r = req(Filters::default(), "state_at", true, 37);
    for page in 0.. {
        let l = list(&kv, &r).unwrap();
        seen.extend(ids(&l));
        // Newer tasks arrive between pages: they sort before the cursor.
        let json = format!(
            r#"{{"type":"task-received","uuid":"new{page}","timestamp":{}}}"#,
            9000 + page
        );
        ingest(&kv, &events(&json));
        match l.next {
            Some(c) => r.cursor = Some(c),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "duplicates");
    assert_eq!(sorted, before, "gaps");
}

#[test]
fn offsets_skip_without_reading_what_they_skip() {
    let kv = filled(800);
    let mut r = req(
        Filters {
            state: Some(TaskState::Success),
            ..Filters::default()
        },
        "state_at",
        true,
        10,
    );
    r.offset = 300;
    let l = list(&kv, &r).unwrap();
    assert_eq!(ids(&l), brute(&kv, &r));
    assert!(l.total_exact);
}

#[test]
fn a_sparse_search_stops_at_the_budget_and_continues_by_cursor() {
    let kv = filled(3000);
    let r = req(
        Filters {
            search: Some("t0007".into()),
            ..Filters::default()
        },
        "state_at",
        true,
        10,
    );
    let first = list(&kv, &r).unwrap();
    assert!(
        first.tasks.is_empty() && first.next.is_some(),
        "t0007 is beyond the first {MAX_EXAMINED}"
    );
    let more = list(
        &kv,
        &Request {
            cursor: first.next,
            ..r
        },
    )
    .unwrap();
    assert_eq!(ids(&more), ["t0007"]);
}

#[test]
fn the_newest_page_reads_the_same_keys_at_any_size() {
    let reads = |n: usize| {
        let kv = filled(n);
        kv.reset_counts();
        let l = list(&kv, &req(Filters::default(), "state_at", true, 50)).unwrap();
        assert_eq!(l.tasks.len(), 50);
        kv.reads()
    };
    let (small, large) = (reads(1000), reads(20_000));
    assert!(
        large <= small + 2,
        "1 000 tasks: {small} keys read, 20 000: {large}"
    );
    assert!(large <= 60, "{large} keys for 50 tasks");
}

#[test]
fn stale_entries_are_skipped_and_cleaned() {
    let kv = filled(10);
    // An entry left by a writer that lost a race: the task is not RECEIVED any more.
    let stale = crate::pos::Entry {
        pos: Pos::new(Key::Num(99999.0), "t0002"),
        rev: 1,
    };
    index::apply(&kv, "s/RECEIVED", vec![index::Op::Add(stale)]).unwrap();
    let r = req(
        Filters {
            state: Some(TaskState::Received),
            ..Filters::default()
        },
        "state_at",
        true,
        50,
    );
    let got = ids(&list(&kv, &r).unwrap());
    assert!(!got.contains(&"t0002".to_owned()));
    let raw = Scanner::open(&kv, "s/RECEIVED", true, None)
        .unwrap()
        .take(100)
        .unwrap();
    assert!(raw.iter().all(|e| e.pos.id != "t0002"), "cleaned");
}
