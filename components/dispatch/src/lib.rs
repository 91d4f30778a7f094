//! Vigil's dispatch component: for a batch of events and a batch of subscribers it
//! decides who receives what, encodes each distinct (event, encoding) once, and makes
//! the rate-limit decision (send now, hold for the next batch, conflate, drop).
//!
//! - [`filter`]: does a subscriber want an event.
//! - [`encode`]: JSON, MessagePack, gzip over 1 KiB.
//! - [`rate`]: the per-subscriber token bucket.
//! - [`plan`]: the batch decision that ties them together.
//!
//! The logic is plain Rust over the WIT types, so it is unit-tested natively.

// `wit_bindgen::generate!` and `export!` emit the component's ABI glue.
#![allow(unsafe_code)]

pub mod encode;
pub mod filter;
pub mod plan;
pub mod rate;

wit_bindgen::generate!({
    world: "dispatcher",
    path: "../../wit",
    generate_all,
    additional_derives: [PartialEq],
});

pub use exports::vigil::platform::dispatch::Guest;
pub use vigil::platform::types::{
    Decision, Delivery, Encoding, Event, Filter, Frame, Plan, RateState, Subscriber,
};

/// The component.
pub struct Dispatcher;

impl Guest for Dispatcher {
    fn decide(now_ms: u64, events: Vec<Event>, subscribers: Vec<Subscriber>) -> Plan {
        plan::plan(now_ms, &events, &subscribers)
    }

    fn encode_batch(events: Vec<Event>, encoding: Encoding, gzip: bool) -> Frame {
        encode::batch(&events, encoding, gzip)
    }
}

// Export names like `vigil:dispatch/dispatch@0.1.0#decide` exist only in the component;
// native builds (the unit tests) call the `Guest` impl directly.
#[cfg(target_arch = "wasm32")]
export!(Dispatcher);
