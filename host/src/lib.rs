//! Vigil's host: one process that serves the Spin components' HTTP routes, holds the
//! long-lived push connections, and runs every outgoing event through the dispatch
//! component.
//!
//! - [`config`]: what `vigil serve` is told, and the JWT secret it signs with.
//! - [`manifest`], [`routes`]: reading `spin.toml` and matching Spin routes.
//! - [`runtime_config`], [`kv`]: the Spin key-value interface and its backends.
//! - [`variables`]: the Spin variables interface.
//! - [`engine`], [`spin_http`]: wasmtime set-up and serving a request with a component.
//! - [`relay`]: moves published events from the outbox into the event log and the hub.
//! - [`dispatch`], [`hub`]: the dispatch component, and the subscriber registry it decides for.
//! - [`push`]: the SSE and WebSocket transports.
//! - [`metrics`]: Prometheus metrics of the push side (`/metrics`).
//! - [`rate_limit`]: per-caller request limit on the REST routes.
//! - [`server`]: the axum app tying it together.
//! - [`demo`]: `vigil demo`, a simulated deployment reporting through the ingest API.
#![deny(missing_docs)]

pub mod config;
pub mod demo;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod hub;
pub mod kv;
pub mod manifest;
pub mod metrics;
pub mod push;
pub mod rate_limit;
pub mod relay;
pub mod routes;
pub mod runtime_config;
pub mod server;
pub mod spin_http;
pub mod variables;
