//! A small mutation fuzzer that runs on stable Rust, inside `cargo test`.
//!
//! Each fuzz target (a parser that takes untrusted bytes) gives seed inputs (valid
//! examples) and a dictionary (tokens of its grammar). [`fuzz`] first replays every
//! input ever kept in `crates/fuzz/regressions/<target>/`, then mutates seeds for a
//! bounded time — bit flips, byte changes, dictionary insertions, deletions,
//! duplications, splices, truncations — and calls the target's check on each. A check
//! fails by panicking (the parser panicked, or an invariant did not hold): the input is
//! written to `target/fuzz-crashes/` and the test fails naming the file, to be moved
//! into the regressions folder once fixed, so it is replayed on every run after.
//!
//! `VIGIL_FUZZ_SECS` sets the budget per target ([`DEFAULT_BUDGET`] otherwise);
//! `VIGIL_FUZZ_SEED` replays a run (each run prints its seed).
#![deny(missing_docs)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time per target in the test suite: long enough for some hundred thousand inputs on a
/// pure parser, short enough that all targets add seconds, not minutes, to the suite.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(2);

/// Largest input generated: parsers' size limits are tested elsewhere; bigger inputs
/// only slow the search down.
const MAX_LEN: usize = 4096;

/// What a target gives the fuzzer.
pub struct Target<'a> {
    /// Names the regressions folder and the crash files.
    pub name: &'a str,
    /// Valid examples to mutate.
    pub seeds: &'a [&'a [u8]],
    /// Tokens of the input's grammar, inserted by mutations.
    pub dictionary: &'a [&'a [u8]],
}

/// How a run went.
#[derive(Debug)]
pub struct Report {
    /// Inputs tried (regressions included).
    pub inputs: u64,
    /// Regression inputs replayed.
    pub regressions: usize,
    /// The seed of the run.
    pub seed: u64,
}

/// The budget: `VIGIL_FUZZ_SECS`, or [`DEFAULT_BUDGET`].
pub fn budget() -> Duration {
    std::env::var("VIGIL_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_BUDGET, Duration::from_secs_f64)
}

/// The run's seed: `VIGIL_FUZZ_SEED`, or the clock.
pub fn seed() -> u64 {
    std::env::var("VIGIL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Replays the target's regressions, then fuzzes it for [`budget`]; panics on the
/// first input whose check panics.
pub fn fuzz(target: &Target<'_>, check: impl Fn(&[u8])) -> Report {
    let seed = seed();
    println!(
        "fuzz {}: seed {seed} (VIGIL_FUZZ_SEED={seed} replays it)",
        target.name
    );
    let kept = regressions(target.name);
    for input in &kept {
        run_one(target.name, input, &check);
    }
    let mut mutator = Mutator::new(seed);
    let deadline = Instant::now() + budget();
    let mut inputs = kept.len() as u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            let input = mutator.next(target.seeds, target.dictionary);
            run_one(target.name, &input, &check);
            inputs += 1;
        }
    }
    println!("fuzz {}: {inputs} inputs, no failure", target.name);
    Report {
        inputs,
        regressions: kept.len(),
        seed,
    }
}

fn run_one(name: &str, input: &[u8], check: &impl Fn(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
        let path = save_crash(name, input);
        panic!(
            "fuzz {name}: the check failed on {} (input {:?}); once fixed, move it to \
             crates/fuzz/regressions/{name}/",
            path.display(),
            String::from_utf8_lossy(input)
        );
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file in `regressions/<name>/`, sorted.
pub fn regressions(name: &str) -> Vec<Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(root().join("regressions").join(name)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn save_crash(name: &str, input: &[u8]) -> PathBuf {
    let dir = root().join("../../target/fuzz-crashes");
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{name}-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

/// Makes inputs from seeds: a xorshift generator and byte-level mutations.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A mutator whose choices follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed | 1 }
    }

    fn below(&mut self, n: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % n.max(1) as u64) as usize
    }

    /// A new input: a seed with one to eight mutations.
    pub fn next(&mut self, seeds: &[&[u8]], dictionary: &[&[u8]]) -> Vec<u8> {
        let mut input = seeds
            .get(self.below(seeds.len()))
            .map_or_else(Vec::new, |s| s.to_vec());
        for _ in 0..=self.below(8) {
            self.mutate(&mut input, seeds, dictionary);
        }
        input.truncate(MAX_LEN);
        input
    }

    fn mutate(&mut self, input: &mut Vec<u8>, seeds: &[&[u8]], dictionary: &[&[u8]]) {
        let at = self.below(input.len() + 1);
        match self.below(7) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << self.below(8);
            }
            1 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] = self.interesting();
            }
            2 if !dictionary.is_empty() => {
                let token = dictionary[self.below(dictionary.len())];
                input.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + self.below(16)).min(input.len());
                input.drain(at..end);
            }
            4 => {
                let end = (at + self.below(32)).min(input.len());
                let copy = input[at..end].to_vec();
                input.splice(at..at, copy);
            }
            5 if !seeds.is_empty() => {
                let other = seeds[self.below(seeds.len())];
                let from = self.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.truncate(at),
        }
    }

    /// Bytes that break parsers more often than random ones.
    fn interesting(&mut self) -> u8 {
        const BYTES: [u8; 16] = [
            0, 0xff, 0x7f, 0x80, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'%', b'.', b'-',
            b'9',
        ];
        if self.below(2) == 0 {
            BYTES[self.below(BYTES.len())]
        } else {
            self.below(256) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_caught_and_saved() {
        let target = Target {
            name: "self-test",
            seeds: &[b"abc"],
            dictionary: &[b"x"],
        };
        let caught = catch_unwind(AssertUnwindSafe(|| {
            fuzz(&target, |input| assert!(!input.contains(&b'x')))
        }));
        assert!(
            caught.is_err(),
            "an input with `x` is made within the budget"
        );
    }

    #[test]
    fn mutations_are_bounded_and_reproducible() {
        let (mut a, mut b) = (Mutator::new(7), Mutator::new(7));
        for _ in 0..1000 {
            let x = a.next(&[b"{\"a\":1}"], &[b"null"]);
            assert!(x.len() <= MAX_LEN);
            assert_eq!(x, b.next(&[b"{\"a\":1}"], &[b"null"]));
        }
    }
}
