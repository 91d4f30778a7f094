//! What every push connection shares: the hub, the limits, the metrics, the event log
//! it resumes from (embedded or Redis: it does not know which), the verifier tokens are
//! checked with, and the components it asks for snapshots.

use std::sync::Arc;

use async_trait::async_trait;
use vigil_core::auth::Verifier;
use vigil_log::EventLog;

use crate::config::PushConfig;
use crate::hub::Hub;
use crate::metrics::Metrics;

/// The HTTP components, as push connections need them: a snapshot (`GET` of a JSON
/// resource) as the holder of a token would see it.
#[async_trait]
pub trait Components: Send + Sync + 'static {
    /// Serves `GET path` with `token`'s rights. `None` if the component refused (the
    /// role may not see it) or answered something that is not JSON.
    async fn get_json(&self, path: &str, token: &str) -> Option<serde_json::Value>;
}

/// Shared by every push handler; cheap to clone.
#[derive(Clone)]
pub struct PushState(Arc<Inner>);

struct Inner {
    hub: Hub,
    log: Arc<dyn EventLog>,
    verifier: Verifier,
    push: PushConfig,
    metrics: Arc<Metrics>,
    components: Arc<dyn Components>,
}

impl PushState {
    /// Everything the transports need.
    pub fn new(
        hub: Hub,
        log: Arc<dyn EventLog>,
        verifier: Verifier,
        push: PushConfig,
        metrics: Arc<Metrics>,
        components: Arc<dyn Components>,
    ) -> Self {
        Self(Arc::new(Inner {
            hub,
            log,
            verifier,
            push,
            metrics,
            components,
        }))
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// The event log: resumes read it.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.0.log
    }

    /// Verifies tokens as the components do (the same `jwt_*` variables).
    pub fn verifier(&self) -> &Verifier {
        &self.0.verifier
    }

    /// Push limits.
    pub fn push(&self) -> &PushConfig {
        &self.0.push
    }

    /// Push metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// `GET path` from the components as the holder of `token` would see it, e.g. the
    /// dashboard snapshot a push connection starts with.
    pub async fn internal_get(&self, path: &str, token: &str) -> Option<serde_json::Value> {
        self.0.components.get_json(path, token).await
    }
}
