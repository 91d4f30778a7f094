//! Vigil's host: one process that serves the Spin components' HTTP routes
//! (`vigil-runtime`), holds the long-lived push connections (`vigil-push`), and moves
//! what the components publish into the event log.
//!
//! - [`cli`]: the command line; [`config`]: what `vigil serve` is told (defaults in
//!   one place), and the JWT secret it signs with.
//! - [`connections`]: accepting connections, with timeouts and a cap;
//!   [`first_request`]: telling an SSE request or a long-poll served off the HTTP server
//!   by its first bytes; [`long_poll`]: serving a long-poll on the connection itself.
//! - [`server`]: the axum app tying the runtime and the push side together.
//! - [`relay`]: moves published events from the outbox into the event log.
//! - [`refusals`]: the host's own limits, and one JSON shape for every refusal.
//! - [`rate_limit`]: per-caller request limit on the REST routes.
//! - [`write_timeout`]: a stream whose stalled writes fail, for clients that stop reading.
//! - [`demo`]: `vigil demo`, a simulated deployment reporting through the ingest API.
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod connections;
pub mod demo;
pub mod first_request;
pub mod long_poll;
pub mod rate_limit;
pub mod refusals;
pub mod relay;
pub mod server;
pub mod write_timeout;
