//! Per-field "newest wins" bookkeeping, so a record ends the same whatever order its
//! events arrive in: each field remembers the `(timestamp, stage)` of the event that
//! set it, and an event sets a field only if it is at least as new. Applied in
//! timestamp order, every event wins; shuffled, each field still ends with the value of
//! the newest event that carried it — the same record. (Only events with the very same
//! timestamp and stage depend on arrival order.)
//!
//! Stored compactly: one group per distinct event stamp, with a bit per known field it
//! owns and the names of the free-form fields it owns.

use serde::{Deserialize, Serialize};

/// When an event happened: its timestamp, then its lifecycle stage to break ties.
pub type At = (f64, u8);

/// The stamps of one record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Stamps(Vec<Group>);

/// The fields one event stamp currently owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    #[serde(rename = "t")]
    ts: f64,
    #[serde(rename = "r")]
    rank: u8,
    /// Known fields, a bit each (the record type numbers them).
    #[serde(rename = "m", default)]
    mask: u32,
    /// Free-form fields by name.
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    extra: Vec<String>,
}

impl Group {
    fn at(&self) -> At {
        (self.ts, self.rank)
    }
}

fn newer_or_same(a: At, b: At) -> bool {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_ge()
}

impl Stamps {
    /// Whether nothing is stamped.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn of_bit(&self, bit: u8) -> Option<At> {
        self.0
            .iter()
            .find(|g| g.mask & (1 << bit) != 0)
            .map(Group::at)
    }

    fn of_extra(&self, key: &str) -> Option<At> {
        self.0
            .iter()
            .find(|g| g.extra.iter().any(|k| k == key))
            .map(Group::at)
    }

    /// Claims known field `bit` for an event at `at`, if no newer event set it; whether
    /// the event may write the field.
    pub fn claim(&mut self, bit: u8, at: At) -> bool {
        if self.of_bit(bit).is_some_and(|cur| !newer_or_same(at, cur)) {
            return false;
        }
        self.0.iter_mut().for_each(|g| g.mask &= !(1 << bit));
        self.group(at).mask |= 1 << bit;
        self.tidy();
        true
    }

    /// As [`Stamps::claim`], for a free-form field.
    pub fn claim_extra(&mut self, key: &str, at: At) -> bool {
        if self
            .of_extra(key)
            .is_some_and(|cur| !newer_or_same(at, cur))
        {
            return false;
        }
        self.0.iter_mut().for_each(|g| g.extra.retain(|k| k != key));
        self.group(at).extra.push(key.to_owned());
        self.tidy();
        true
    }

    fn group(&mut self, at: At) -> &mut Group {
        let i = match self.0.iter().position(|g| g.at() == at) {
            Some(i) => i,
            None => {
                self.0.push(Group {
                    ts: at.0,
                    rank: at.1,
                    mask: 0,
                    extra: Vec::new(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    fn tidy(&mut self) {
        self.0.retain(|g| g.mask != 0 || !g.extra.is_empty());
        self.0
            .sort_by(|a, b| a.ts.total_cmp(&b.ts).then(a.rank.cmp(&b.rank)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_claim_wins_in_any_order() {
        let claims = [((1.0, 1), 'a'), ((2.0, 3), 'b'), ((2.0, 1), 'c')];
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
            let (mut s, mut value) = (Stamps::default(), ' ');
            for i in order {
                let (at, v) = claims[i];
                if s.claim(4, at) {
                    value = v;
                }
            }
            assert_eq!(value, 'b', "order {order:?}");
        }
    }

    #[test]
    fn groups_stay_few_and_round_trip() {
        let mut s = Stamps::default();
        for bit in 0..5 {
            s.claim(bit, (1.0, 1));
        }
        s.claim(2, (3.0, 5));
        s.claim_extra("clock", (1.0, 1));
        assert!(s.claim_extra("clock", (3.0, 5)));
        assert!(!s.claim_extra("clock", (2.0, 5)));
        assert_eq!(s.0.len(), 2);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"[{"t":1.0,"r":1,"m":27},{"t":3.0,"r":5,"m":4,"x":["clock"]}]"#
        );
        assert_eq!(serde_json::from_str::<Stamps>(&json).unwrap(), s);
    }
}
