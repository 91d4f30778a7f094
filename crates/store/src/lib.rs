//! Vigil's storage layout over a key-value store, with no I/O of its own: everything
//! goes through the small [`kv::Kv`] trait (what `wasi:keyvalue` gives a Spin
//! component), so it is tested here against [`memory::MemoryKv`] and runs in the api
//! component against the real store.
//!
//! - [`kv`], [`memory`]: the key-value operations, and an in-memory store for tests.
//! - [`pos`], [`codec`]: index positions and the stored form of index pages.
//! - [`index`], [`dir`], [`scan`]: writing a paged ordered index, its directory, and
//!   walking it.
//! - [`record`], [`sets`]: the stored task record, and the indexes and counters a task
//!   belongs to.
//! - [`tasks`]: writing task records by compare-and-swap, with their index entries and
//!   counters; [`verify`]: checking entries against records on read.
//! - [`query`], [`listing`]: which index answers a listing, and walking it.
//! - [`retention`]: expiring finished tasks by age and count.
//! - [`aggregate`], [`registry`]: per-queue figures, and the names in use.
#![deny(missing_docs)]

pub mod aggregate;
pub mod codec;
pub mod dir;
pub mod index;
pub mod kv;
pub mod listing;
pub mod memory;
mod page;
pub mod pos;
pub mod query;
pub mod record;
pub mod registry;
pub mod retention;
pub mod scan;
pub mod sets;
pub mod tasks;
#[cfg(test)]
mod testing;
pub mod verify;
