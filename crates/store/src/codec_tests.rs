//! The stored form of pages and directories: round trips, and garbage refused.
use super::*;

fn e(k: f64, id: &str, rev: u64) -> Entry {
    Entry {
        pos: Pos::new(Key::Num(k), id),
        rev,
    }
}

#[test]
fn nodes_and_dirs_round_trip() {
    let leaf = Node::Leaf {
        lo: Some(Pos::new(Key::Text("add".into()), "")),
        entries: vec![e(1.5, "a", 1), e(-3.0, "b", 300)],
    };
    let split = Node::Split(vec![
        (None, 7),
        (Some(Pos::new(Key::Num(2.0), "x")), u64::MAX),
    ]);
    for n in [leaf, split, Node::Merged(9)] {
        assert_eq!(decode_node("k", &encode_node(&n)).unwrap(), n);
    }
    let dir = Dir {
        pages: vec![(None, 0), (Some(Pos::new(Key::Num(5.0), "")), 42)],
    };
    let pages = Root::Pages(dir);
    assert_eq!(decode_root("k", &encode_root(&pages)).unwrap(), pages);
    let root = Root::Chunks(vec![(None, 3), (Some(Pos::new(Key::Num(9.0), "z")), 4)]);
    assert_eq!(decode_root("k", &encode_root(&root)).unwrap(), root);
    let chunk = vec![(Some(Pos::new(Key::Num(9.0), "z")), 4), (None, 1)];
    assert_eq!(decode_chunk("k", &encode_chunk(&chunk)).unwrap(), chunk);
}

#[test]
fn directory_kinds_are_not_mistaken_for_each_other() {
    let root = encode_root(&Root::Chunks(vec![(None, 3)]));
    assert!(matches!(
        decode_chunk("k", &root),
        Err(KvError::Corrupt { .. })
    ));
    assert!(decode_root("k", &encode_chunk(&[(None, 1)])).is_err());
    assert!(
        decode_chunk("k", &encode_chunk(&[])).is_err(),
        "an empty chunk"
    );
    let no_first = encode_root(&Root::Chunks(vec![(Some(Pos::new(Key::Num(1.0), "")), 1)]));
    assert!(decode_root("k", &no_first).is_err());
}

#[test]
fn garbage_is_corrupt_not_a_panic() {
    for bad in [
        &b""[..],
        b"\x01",
        b"\x01L\x01n",
        b"\x02L",
        b"\x01L\x00\xff\xff\xff\xff\x0f",
    ] {
        assert!(matches!(
            decode_node("k", bad),
            Err(KvError::Corrupt { .. })
        ));
    }
    let no_first = encode_root(&Root::Pages(Dir {
        pages: vec![(Some(Pos::new(Key::Num(1.0), "")), 1)],
    }));
    assert!(decode_root("k", &no_first).is_err());
}

/// A page changed in place is byte for byte the page decoded, changed and encoded, for
/// any mix of adds (new, newer, older revisions, repeated) and removals (hits, misses,
/// spared newer revisions), on number and text keys.
#[test]
fn a_leaf_changed_in_place_is_the_leaf_decoded_changed_and_encoded() {
    use crate::index::Op;
    use crate::page::merge;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..300 {
        let key = |k: u64| match round % 2 {
            0 => Key::Num(k as f64 - 5.0),
            _ => Key::Text(format!("name-{k}")),
        };
        let mut entries: Vec<Entry> = (0..rand(40))
            .map(|_| Entry {
                pos: Pos::new(key(rand(20)), format!("t{}", rand(6))),
                rev: rand(5),
            })
            .collect();
        entries.sort_by(|a, b| a.pos.cmp(&b.pos));
        entries.dedup_by(|a, b| a.pos == b.pos);
        let lo = (round % 3 == 0).then(|| Pos::new(key(0), ""));
        let stored = encode_node(&Node::Leaf {
            lo: lo.clone(),
            entries: entries.clone(),
        });
        let mut ops: Vec<Op> = (0..rand(8))
            .map(|_| {
                let pos = Pos::new(key(rand(20)), format!("t{}", rand(6)));
                match rand(2) {
                    0 => Op::Add(Entry { pos, rev: rand(6) }),
                    _ => Op::Remove {
                        pos,
                        max_rev: rand(6),
                    },
                }
            })
            .collect();
        ops.sort_by(|a, b| a.pos().cmp(b.pos()));

        let decoded_changed = merge(&mut entries, &ops, Entry::clone);
        let mut leaf = read_leaf("k", &stored).unwrap().expect("a leaf");
        assert_eq!(merge(&mut leaf.items, &ops, Item::new), decoded_changed);
        let expected = encode_node(&Node::Leaf { lo, entries });
        assert_eq!(leaf.encode(), expected, "round {round}");
    }
    let marker = encode_node(&Node::Merged(3));
    assert!(read_leaf("k", &marker).unwrap().is_none());
    assert!(read_leaf("k", b"\x01L\x01n").is_err(), "garbage is corrupt");
}
