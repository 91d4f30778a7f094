//! The dashboard in a real browser: headless Chromium (Debian's `chromium`), driven by
//! `playwright-core` from node's test runner (`tests/browser/*.test.js`), against the
//! real `vigil` binary with `vigil demo` feeding it. Saves a screenshot to
//! `target/dashboard.png` (or `$VIGIL_SCREENSHOT`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use vigil_core::auth::Role;

/// Where the node tests and their `node_modules` (from `npm ci`, run by `scripts/test`) live.
fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

/// The browser: `VIGIL_CHROMIUM`, else Debian's package.
fn chromium() -> PathBuf {
    std::env::var_os("VIGIL_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Events the second host keeps for resume (the browser test ingests more than that).
const SHORT_HISTORY: u64 = 20;

/// Child processes killed when the test ends, however it ends.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn dashboard_in_headless_chromium() {
    let browser = chromium();
    assert!(
        browser.is_file(),
        "no Chromium at {}: install it with `apt-get install -y chromium` (.ci/run does), \
         or point VIGIL_CHROMIUM at one",
        browser.display()
    );
    let dir = node_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser first (scripts/test does)"
    );
    let data = tempfile::tempdir().unwrap();
    let store = common::TestStore::from_env(data.path());
    let (host, base) = common::spawn_binary(data.path(), &store);
    let mut children = Kill(vec![host]);
    let demo = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--url", &base, "--rate", "3", "--duration", "10m"])
        .env("VIGIL_JWT_SECRET", common::SECRET)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    children.0.push(demo);

    // A second host, in-process, keeping only a short history: a client away for longer
    // is told to `reset` and must refetch its snapshot.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let short = rt.block_on(common::start_with(|c| c.history = SHORT_HISTORY));

    // Into target/ so a test run leaves the tree clean; `VIGIL_SCREENSHOT=docs/dashboard.png`
    // refreshes the README's picture.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let screenshot = root.join(
        std::env::var_os("VIGIL_SCREENSHOT").unwrap_or_else(|| "target/dashboard.png".into()),
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    let out = Command::new("node")
        .current_dir(&dir)
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        // A failed test that leaves a client open must not keep node running forever.
        .arg("--test-force-exit")
        .args(&files)
        .env("VIGIL_URL", &base)
        .env("VIGIL_SHORT_HISTORY_URL", &short.base)
        .env("VIGIL_CHROMIUM", &browser)
        .env("VIGIL_SCREENSHOT", &screenshot)
        .env("VIGIL_ADMIN_TOKEN", common::admin())
        .env("VIGIL_VIEWER_TOKEN", common::token("alice", Role::Viewer))
        .env("VIGIL_PRODUCER_TOKEN", common::producer())
        .output()
        .expect("node on PATH");
    drop(children);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed: {}", out.status);
}
