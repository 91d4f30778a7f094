//! Connections that are one push stream each, with no protocol session of their own:
//! SSE ([`sse`]) and the native WebSocket ([`websocket`]). Each is one task that writes
//! what its connection's queue holds with one `writev` per wake-up, and has no timer:
//! heartbeats come through the queue.

pub mod sse;
pub mod websocket;

/// Rounds of reading and writing one wake-up may do before yielding to other tasks.
const MAX_ROUNDS: usize = 16;
