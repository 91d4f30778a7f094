//! The component's linear memory starts at 16 MiB instead of the linker's default (its
//! data and a 1 MiB stack). An instance whose memory grew during a request leaves its
//! pooled slot to be shrunk back before the next one: an `mprotect` that makes the
//! kernel flush the TLBs of every core the host ran on, for every such request. Starting
//! larger than a request needs (a batch of 1 000 events uses a few MiB) means no request
//! grows it; pages never touched cost nothing.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() == Ok("wasm") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 16 << 20);
    }
}
