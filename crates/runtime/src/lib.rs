//! Runs Spin HTTP components the way Spin does, inside Vigil's host: the manifest's
//! routes, a wasmtime engine built once, a fresh store per request with a deadline, and
//! the Spin interfaces the components import.
//!
//! - [`manifest`], [`routes`]: reading `spin.toml` and matching Spin routes.
//! - [`engine`]: the wasmtime engine and the epoch ticker behind deadlines.
//! - [`http`]: serving a request with a component (`wasi:http`).
//! - [`key_value`], [`wasi_keyvalue`]: `fermyon:spin/key-value` and `wasi:keyvalue` over
//!   the `vigil-kv` backends, and the [`key_value::TakeOver`] hook.
//! - [`park`]: long-polls parked with no instance, woken by published events.
//! - [`variables`]: the host side of `fermyon:spin/variables`.
//! - [`error`]: refusals in the JSON error shape the components use.
#![deny(missing_docs)]

pub mod engine;
pub mod error;
pub mod http;
pub mod key_value;
pub mod manifest;
pub mod park;
pub mod routes;
pub mod variables;
pub mod wasi_keyvalue;
