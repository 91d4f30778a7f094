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
    assert_eq!(decode_dir("k", &encode_dir(&dir)).unwrap(), dir);
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
    let no_first = encode_dir(&Dir {
        pages: vec![(Some(Pos::new(Key::Num(1.0), "")), 1)],
    });
    assert!(decode_dir("k", &no_first).is_err());
}
