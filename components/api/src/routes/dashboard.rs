//! `GET /api/v1/dashboard`: everything a dashboard needs on first paint, in one call,
//! with the `seq` to resume the push stream from.

use std::collections::BTreeMap;

use serde_json::json;
use spin_sdk::http::Response;
use vigil_core::auth::Role;
use vigil_core::breaker::{Breaker, BreakerConfig};
use vigil_core::error::ApiError;
use vigil_core::keys;
use vigil_core::task::Task;

use crate::request::Req;
use crate::store::Kv;

/// Most recent tasks the snapshot carries.
const RECENT: usize = 100;

/// The snapshot.
pub fn get(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    let kv = Kv::open()?;
    // Read the cursor first: anything after it arrives over push, nothing is missed.
    let seq = kv.head()?;
    let now = crate::clock::secs();
    let mut tasks: Vec<Task> = kv
        .all::<Task>(keys::TASK_PREFIX)?
        .into_iter()
        .filter(|t| crate::routes::tasks::visible(&claims, t))
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tasks {
        *counts.entry(t.state.as_str()).or_default() += 1;
    }
    tasks.sort_by(|a, b| b.state_at.total_cmp(&a.state_at));
    let recent: Vec<_> = tasks.iter().take(RECENT).map(Task::view).collect();
    let breakers: Vec<_> = kv
        .all::<Breaker>(keys::BREAKER_PREFIX)?
        .iter()
        .map(|b| b.status(now, &BreakerConfig::default()))
        .collect();
    let admin = claims.role == Role::Admin;
    let body = json!({
        "seq": seq,
        "tasks": recent,
        "counts": counts,
        "queues": crate::routes::workers::queues(&kv)?,
        "workers": crate::routes::workers::all(&kv)?,
        "breakers": breakers,
        "system_metrics": if admin { kv.get::<serde_json::Value>(keys::SYSTEM_METRICS)? } else { None },
        "timestamp": vigil_core::time::iso8601(now),
    });
    Ok(crate::json_response(200, &body))
}
