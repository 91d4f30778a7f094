//! The byte formats of the push transports, without I/O: what a connection writes is
//! a framing of bytes shared by every connection that gets the same message.
//!
//! - [`ws`]: WebSocket frames (the native WebSocket and Socket.IO's WebSocket transport).
//! - [`sse`]: Server-Sent Events messages.
//! - [`http`]: telling a request taken off the HTTP server by its first bytes.

pub mod http;
pub mod sse;
pub mod ws;
