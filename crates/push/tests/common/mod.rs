//! A hub around the built dispatch component, and what its connections received.

// Each test binary uses some of these helpers, not all.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use vigil_core::event::Event;
use vigil_log::Published;
use vigil_push::config::PushConfig;
use vigil_push::dispatch::{DispatchComponent, Encoding, Filter};
use vigil_push::hub::{Hub, Payload, Spec, Subscription, Wire};
use vigil_push::metrics::Metrics;

/// A hub with `config`, deciding with the component `./scripts/build-wasm` built.
pub async fn hub(config: PushConfig) -> (Hub, Arc<Metrics>) {
    let engine = vigil_runtime::engine::build().unwrap();
    vigil_runtime::engine::start_epoch_ticker(&engine);
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release/vigil_dispatch.wasm");
    let dispatch = DispatchComponent::load(&engine, &wasm).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    (Hub::start(dispatch, config, metrics.clone()), metrics)
}

/// JSON events of `topic`, no heartbeats (they would only be noise here).
pub fn spec(topic: &str) -> Spec {
    Spec {
        filter: Some(Filter {
            topics: vec![topic.into()],
            queues: vec![],
            states: vec![],
            keys: vec![],
            owner: None,
        }),
        encoding: Encoding::Json,
        gzip: false,
        heartbeat: false,
    }
}

/// `n` subscriptions to `topic`.
pub async fn subscribe(hub: &Hub, topic: &str, n: usize) -> Vec<Subscription> {
    let mut subs = Vec::with_capacity(n);
    for _ in 0..n {
        subs.push(hub.subscribe(spec(topic)).await.unwrap());
    }
    subs
}

/// Event `seq` of `topic` about item `key` (updates of one key conflate).
pub fn event(seq: u64, topic: &str, key: &str) -> Arc<Published> {
    let mut e = Event::new("task_update", topic, 0, serde_json::json!({ "id": key }));
    e.key = Some(key.into());
    Arc::new(Published::new(e, seq).unwrap())
}

/// Returns once the hub handled every command sent before: it handles them in order,
/// and a replay of nothing answers at once.
pub async fn settle(hub: &Hub, sub: &Subscription) {
    hub.replay(sub.id, Vec::new(), 0).await;
}

/// The payloads queued to `sub` so far, taken off its queue.
pub fn received(sub: &Subscription) -> Vec<Arc<Payload>> {
    let mut out = Vec::new();
    sub.queue.try_drain(&mut out, usize::MAX);
    out.into_iter()
        .filter_map(|m| match m {
            Wire::Payload { payload, .. } => Some(payload),
            _ => None,
        })
        .collect()
}

/// The sequence numbers of `payloads` of event `kind`.
pub fn seqs(payloads: &[Arc<Payload>], kind: &str) -> Vec<u64> {
    payloads
        .iter()
        .filter(|p| &*p.kind == kind)
        .map(|p| p.seq)
        .collect()
}
