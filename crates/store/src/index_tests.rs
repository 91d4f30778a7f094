//! Tests of the paged index: order, splits and merges, revisions, interleaved writers,
//! and a directory left behind by a writer that stopped half-way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::dir::read_dir;
use crate::memory::{shuffle, MemoryKv};
use crate::pos::Key;
use crate::scan::Scanner;

fn entry(k: f64, id: &str, rev: u64) -> Entry {
    Entry {
        pos: Pos::new(Key::Num(k), id),
        rev,
    }
}

fn add(k: f64, id: &str) -> Op {
    Op::Add(entry(k, id, 1))
}

fn remove(k: f64, id: &str) -> Op {
    Op::Remove {
        pos: Pos::new(Key::Num(k), id),
        max_rev: u64::MAX,
    }
}

fn walk(kv: &MemoryKv, desc: bool, after: Option<Pos>) -> Vec<String> {
    let mut s = Scanner::open(kv, "t", desc, after).unwrap();
    s.take(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.pos.id)
        .collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{i:05}")).collect()
}

#[test]
fn keeps_order_across_many_pages_both_ways() {
    let kv = MemoryKv::new();
    let mut order: Vec<usize> = (0..2000).collect();
    shuffle(&mut order, 7);
    for chunk in order.chunks(100) {
        let ops = chunk
            .iter()
            .map(|&i| add(i as f64, &format!("{i:05}")))
            .collect();
        apply(&kv, "t", ops).unwrap();
    }
    let dir = read_dir(&kv, "t").unwrap();
    assert!(
        dir.pages.len() >= 2000 / PAGE_MAX,
        "{} pages",
        dir.pages.len()
    );
    assert_eq!(walk(&kv, false, None), ids(0..2000));
    let mut desc = ids(0..2000);
    desc.reverse();
    assert_eq!(walk(&kv, true, None), desc);
    let from = Some(Pos::new(Key::Num(1500.0), "01500"));
    assert_eq!(walk(&kv, true, from.clone()), desc[500..]);
    assert_eq!(walk(&kv, false, from), ids(1501..2000));
}

#[test]
fn appends_leave_pages_nearly_full_and_reads_stay_small() {
    let kv = MemoryKv::new();
    for batch in 0..400 {
        let ops = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                add(n as f64, &format!("{n:06}"))
            })
            .collect();
        apply(&kv, "t", ops).unwrap();
    }
    let pages = read_dir(&kv, "t").unwrap().pages.len();
    assert!(
        pages <= 40_000 / HEAD_FILL + 1,
        "{pages} pages for 40 000 appends"
    );
    kv.reset_counts();
    let mut s = Scanner::open(&kv, "t", true, None).unwrap();
    assert_eq!(s.take(50).unwrap()[0].pos.id, "039999");
    // The directory's root, its top chunk, two pages.
    assert!(kv.reads() <= 4, "newest 50 read {} keys", kv.reads());
}

/// Appends `from..to` in batches of `batch`, ids `{n:06}` at key `n`.
fn append(kv: &MemoryKv, range: std::ops::Range<usize>, batch: usize) {
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(batch) {
        let ops = chunk
            .iter()
            .map(|&n| add(n as f64, &format!("{n:06}")))
            .collect();
        apply(kv, "t", ops).unwrap();
    }
}

/// Keys and bytes one new entry at the top reads.
fn cost_of_one_append(kv: &MemoryKv, n: usize) -> (u64, usize) {
    kv.reset_counts();
    let root = kv.get(&keys::index_dir("t")).unwrap().unwrap().len();
    kv.reset_counts();
    apply(kv, "t", vec![add(n as f64, &format!("{n:06}"))]).unwrap();
    (kv.reads(), root)
}

#[test]
fn a_large_directory_is_cut_into_chunks_and_a_write_reads_one() {
    let kv = MemoryKv::new();
    append(&kv, 0..10_000, 500);
    assert!(matches!(
        crate::codec::decode_root("d", &kv.get(&keys::index_dir("t")).unwrap().unwrap()),
        Ok(crate::codec::Root::Pages(_))
    ));
    let (small_reads, small_root) = cost_of_one_append(&kv, 10_000);
    append(&kv, 10_001..120_000, 1000);
    let root = kv.get(&keys::index_dir("t")).unwrap().unwrap();
    let Ok(crate::codec::Root::Chunks(chunks)) = crate::codec::decode_root("d", &root) else {
        panic!("120 000 entries and still one list");
    };
    assert!(chunks.len() >= 5, "{} chunks", chunks.len());
    let pages = read_dir(&kv, "t").unwrap().pages;
    assert!(pages.len() > 400 && pages.windows(2).all(|w| w[0].0 < w[1].0));
    // At twelve times the entries, a write reads as many keys (the root, one chunk,
    // the page; a list of 44 pages was one key) and a root smaller than the list was.
    let (reads, root_len) = cost_of_one_append(&kv, 120_000);
    assert!(
        reads <= small_reads + 1,
        "{reads} keys read, {small_reads} before"
    );
    assert!(
        root_len < small_root,
        "root of {root_len} bytes, list of {small_root}"
    );
    // Every entry, in order, both ways, from anywhere.
    let want: Vec<String> = (0..=120_000).map(|n| format!("{n:06}")).collect();
    let got = walk(&kv, false, None);
    assert_eq!(got.len(), want.len());
    assert!(got == want);
    let mut desc = want.clone();
    desc.reverse();
    assert!(walk(&kv, true, None) == desc);
    let from = Some(Pos::new(Key::Num(60_000.0), "060000"));
    assert!(walk(&kv, true, from.clone()) == desc[60_001..]);
    assert!(walk(&kv, false, from) == want[60_001..]);
    // Emptying most pages merges them away inside each chunk; the rest stay in order.
    let ops = (0..120_000)
        .filter(|n| n % 1000 != 0)
        .map(|n| remove(n as f64, &format!("{n:06}")))
        .collect();
    apply(&kv, "t", ops).unwrap();
    let left: Vec<String> = (0..=120_000)
        .filter(|n| n % 1000 == 0)
        .map(|n| format!("{n:06}"))
        .collect();
    assert!(walk(&kv, false, None) == left);
    assert!(read_dir(&kv, "t").unwrap().pages.len() < pages.len() / 2);
}

#[test]
fn a_root_left_behind_is_detoured() {
    let kv = MemoryKv::new();
    append(&kv, 0..14_000, 1000);
    let old = kv.get(&keys::index_dir("t")).unwrap().unwrap();
    assert!(matches!(
        crate::codec::decode_root("d", &old),
        Ok(crate::codec::Root::Pages(_))
    ));
    append(&kv, 14_000..20_000, 1000);
    // A crash put the directory key back to its list from before it was cut into
    // chunks: the pages' markers still lead to every entry, and writers carry on.
    kv.set(&keys::index_dir("t"), &old).unwrap();
    let want: Vec<String> = (0..20_000).map(|n| format!("{n:06}")).collect();
    assert!(walk(&kv, false, None) == want);
    append(&kv, 20_000..21_000, 100);
    let mut want: Vec<String> = (0..21_000).map(|n| format!("{n:06}")).collect();
    assert!(walk(&kv, false, None) == want);
    want.reverse();
    assert!(walk(&kv, true, None) == want);
}

#[test]
fn emptied_pages_merge_away() {
    let kv = MemoryKv::new();
    apply(
        &kv,
        "t",
        (0..1000)
            .map(|i| add(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    let before = read_dir(&kv, "t").unwrap().pages.len();
    apply(
        &kv,
        "t",
        (0..900)
            .map(|i| remove(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    let after = read_dir(&kv, "t").unwrap().pages.len();
    assert!(after < before, "{before} pages before, {after} after");
    assert_eq!(walk(&kv, false, None), ids(900..1000));
    apply(
        &kv,
        "t",
        (900..1000)
            .map(|i| remove(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    assert!(walk(&kv, true, None).is_empty());
    assert_eq!(read_dir(&kv, "t").unwrap().pages.len(), 1);
}

#[test]
fn removal_spares_a_newer_revision() {
    let kv = MemoryKv::new();
    apply(&kv, "t", vec![Op::Add(entry(1.0, "a", 5))]).unwrap();
    let stale = |max_rev| Op::Remove {
        pos: Pos::new(Key::Num(1.0), "a"),
        max_rev,
    };
    apply(&kv, "t", vec![stale(4)]).unwrap();
    assert_eq!(walk(&kv, true, None), ["a"]);
    apply(&kv, "t", vec![Op::Add(entry(1.0, "a", 3))]).unwrap();
    apply(&kv, "t", vec![stale(4)]).unwrap();
    assert_eq!(
        walk(&kv, true, None),
        ["a"],
        "re-adding an older revision keeps 5"
    );
    apply(&kv, "t", vec![stale(5)]).unwrap();
    assert!(walk(&kv, true, None).is_empty());
}

#[test]
fn concurrent_writers_lose_nothing() {
    let kv = Arc::new(MemoryKv::new().jitter());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                let mut mine: Vec<usize> = (0..1500).map(|i| i * 4 + t as usize).collect();
                shuffle(&mut mine, t + 1);
                for chunk in mine.chunks(50) {
                    let ops = chunk
                        .iter()
                        .map(|&i| add(i as f64, &format!("{i:05}")))
                        .collect();
                    apply(&*kv, "t", ops).unwrap();
                }
                // Then each removes a third of its own again.
                for chunk in mine.chunks(50).step_by(3) {
                    let ops = chunk
                        .iter()
                        .map(|&i| remove(i as f64, &format!("{i:05}")))
                        .collect();
                    apply(&*kv, "t", ops).unwrap();
                }
                mine.chunks(50)
                    .step_by(3)
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut removed: Vec<usize> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    removed.sort_unstable();
    let expected: Vec<String> = (0..6000)
        .filter(|i| removed.binary_search(i).is_err())
        .map(|i| format!("{i:05}"))
        .collect();
    assert_eq!(walk(&kv, false, None), expected);
    assert!(
        kv.conflicts() > 0,
        "the writers never raced: the test proves nothing"
    );
}

#[test]
fn concurrent_writers_across_chunk_cuts_lose_nothing() {
    let kv = Arc::new(MemoryKv::new().jitter());
    // Four writers, each through the same region at a time, in shuffled batches.
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                let mut mine: Vec<usize> = (0..6_000).map(|i| i * 4 + t as usize).collect();
                shuffle(&mut mine, t + 1);
                mine.sort_by_key(|i| i / 2000);
                for chunk in mine.chunks(100) {
                    let ops = chunk
                        .iter()
                        .map(|&i| add(i as f64, &format!("{i:05}")))
                        .collect();
                    apply(&*kv, "t", ops).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(walk(&kv, false, None), ids(0..24_000));
    let root = kv.get(&keys::index_dir("t")).unwrap().unwrap();
    let Ok(crate::codec::Root::Chunks(chunks)) = crate::codec::decode_root("d", &root) else {
        panic!("24 000 entries and still one list");
    };
    let stored = kv.keys().into_iter().filter(|k| k.contains("##")).count();
    assert!(
        stored > chunks.len(),
        "no chunk was ever cut after the first"
    );
    assert!(
        kv.conflicts() > 0,
        "the writers never raced: the test proves nothing"
    );
}

#[test]
fn a_split_racing_a_swap_is_followed() {
    let kv = Arc::new(MemoryKv::new());
    apply(
        &*kv,
        "t",
        (0..200)
            .map(|i| add(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    // Just before our next swap, another writer overflows the same page.
    let once = Arc::new(AtomicBool::new(false));
    let flag = once.clone();
    kv.set_swap_hook(Some(Arc::new(move |kv: &MemoryKv, _key: &str| {
        if !flag.swap(true, Ordering::SeqCst) {
            let ops = (200..400)
                .map(|i| add(i as f64, &format!("{i:05}")))
                .collect();
            apply(kv, "t", ops).unwrap();
        }
    })));
    apply(&*kv, "t", vec![add(50.5, "mine"), add(1000.0, "top")]).unwrap();
    kv.set_swap_hook(None);
    let got = walk(&kv, false, None);
    assert_eq!(got.len(), 402);
    assert!(got.contains(&"mine".to_owned()) && got.last().unwrap() == "top");
}

#[test]
fn a_directory_left_behind_is_detoured_then_repaired() {
    let kv = MemoryKv::new();
    apply(
        &kv,
        "t",
        (0..300)
            .map(|i| add(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    let old_dir = kv.get(&keys::index_dir("t")).unwrap().unwrap();
    // These split and merge pages; then "crash": the directory goes back to before.
    apply(
        &kv,
        "t",
        (300..1200)
            .map(|i| add(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    apply(
        &kv,
        "t",
        (200..460)
            .map(|i| remove(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    let markers = |kv: &MemoryKv| {
        let pages = kv.keys().into_iter().filter(|k| k.contains('#'));
        pages
            .filter_map(|k| kv.get(&k).unwrap())
            .filter(|b| b[1] != b'L')
            .count()
    };
    assert!(markers(&kv) >= 3, "expected splits and merges");
    kv.set(&keys::index_dir("t"), &old_dir).unwrap();
    let left: Vec<String> = ids(0..200).into_iter().chain(ids(460..1200)).collect();
    assert_eq!(walk(&kv, false, None), left);
    let mut desc = left.clone();
    desc.reverse();
    assert_eq!(walk(&kv, true, None), desc);
    // The next writers through the stale directory fold the markers back in.
    apply(&kv, "t", vec![add(5000.0, "new"), add(300.5, "mid")]).unwrap();
    apply(&kv, "t", vec![add(5001.0, "new2")]).unwrap();
    let repaired = read_dir(&kv, "t").unwrap().pages.len();
    assert!(repaired > 2, "directory repaired to {repaired} pages");
    assert_eq!(walk(&kv, false, None).len(), left.len() + 3);
}

#[test]
fn failed_swaps_are_retried_and_orphans_removed() {
    let kv = MemoryKv::new();
    apply(
        &kv,
        "t",
        (0..256)
            .map(|i| add(i as f64, &format!("{i:05}")))
            .collect(),
    )
    .unwrap();
    let keys_before = kv.keys().len();
    kv.fail_next_swaps(2);
    apply(&kv, "t", vec![add(999.0, "x")]).unwrap();
    assert_eq!(walk(&kv, false, None).len(), 257);
    // page 0 became a marker; two pieces and the directory were added; no orphans.
    assert_eq!(kv.keys().len(), keys_before + 3);
}

#[test]
fn text_keys_with_ties_split_between_ids() {
    let kv = MemoryKv::new();
    let ops = (0..600)
        .map(|i| {
            Op::Add(Entry {
                pos: Pos::new(
                    Key::Text(if i % 2 == 0 { "add" } else { "mul" }.into()),
                    format!("{i:04}"),
                ),
                rev: 1,
            })
        })
        .collect();
    apply(&kv, "t", ops).unwrap();
    let got = walk(&kv, false, None);
    assert_eq!(got.len(), 600);
    assert_eq!(got[0], "0000");
    assert_eq!(got[300], "0001", "all of `add` before `mul`");
}
