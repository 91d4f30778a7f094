//! Vigil's push transports, below the hub: what a connection does with the messages
//! the hub gives it, and the protocols it speaks. No knowledge of events, filters or
//! tokens.
//!
//! - [`conn`]: a connection's bounded queue of shared payloads and its one write path
//!   (one `writev` per wake-up); a transport is a framing of the same payload.
//! - [`stream`]: SSE and native WebSocket connections: one push stream each.
//! - [`wire`]: the byte formats: WebSocket frames, SSE messages.
//! - [`eio`]: Engine.IO v4 and Socket.IO v5: packets, sessions, the WebSocket and HTTP
//!   long-polling transports, upgrades, heartbeats, namespaces and acknowledgements.
#![deny(missing_docs)]

pub mod conn;
pub mod eio;
pub mod stream;
pub mod wire;
