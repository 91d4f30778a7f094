//! `GET /api/v1/dashboard`: everything a dashboard needs on first paint, in one call,
//! with the `seq` to resume the push stream from. Its size is bounded whatever is
//! stored: the newest [`RECENT`] tasks the caller may see, counts by state (counters),
//! and one entry per queue, worker and breaker. Older tasks page through
//! `GET /api/v1/tasks?cursor=…`.

use std::collections::BTreeMap;

use serde_json::json;
use spin_sdk::http::Response;
use vigil_core::auth::{Claims, Role};
use vigil_core::breaker::{Breaker, BreakerConfig};
use vigil_core::error::ApiError;
use vigil_core::keys;
use vigil_core::task::{Task, TaskState};
use vigil_store::listing::{self, Request};
use vigil_store::query::{Filters, Sort};
use vigil_store::{registry, sets};

use crate::request::Req;
use crate::store::{api_error, Kv};

/// Newest tasks the snapshot carries.
pub const RECENT: usize = 100;

/// The snapshot.
pub fn get(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::reader(req)?;
    let kv = Kv::open()?;
    // Read the cursor first: anything after it arrives over push, nothing is missed.
    let seq = kv.head()?;
    let now = crate::clock::secs();
    let admin = claims.role == Role::Admin;
    let body = json!({
        "seq": seq,
        "tasks": recent(&kv, &claims)?.iter().map(Task::view).collect::<Vec<_>>(),
        "counts": counts(&kv, &claims)?,
        "queues": crate::routes::workers::queues(&kv)?,
        "workers": crate::routes::workers::all(&kv)?,
        "breakers": breakers(&kv, now)?,
        "system_metrics": if admin { kv.get::<serde_json::Value>(keys::SYSTEM_METRICS)? } else { None },
        "timestamp": vigil_core::time::iso8601(now),
    });
    Ok(crate::json_response(200, &body))
}

/// The newest tasks `claims` may see.
fn recent(kv: &Kv, claims: &Claims) -> Result<Vec<Task>, ApiError> {
    let owner = (claims.role != Role::Admin).then(|| claims.sub.clone());
    let r = Request {
        filters: Filters {
            owner,
            ..Filters::default()
        },
        sort: Sort {
            field: "state_at".into(),
            desc: true,
        },
        limit: RECENT,
        offset: 0,
        cursor: None,
    };
    Ok(listing::list(kv, &r).map_err(api_error)?.tasks)
}

/// Tasks by state that `claims` may see (states with none left out).
fn counts(kv: &Kv, claims: &Claims) -> Result<BTreeMap<&'static str, i64>, ApiError> {
    let set = |s: TaskState| match claims.role {
        Role::Admin => sets::state(s),
        _ => sets::owner_state(&claims.sub, s),
    };
    let keys: Vec<String> = TaskState::ALL
        .iter()
        .map(|s| keys::count(&set(*s)))
        .collect();
    let n = vigil_store::kv::Kv::counters(kv, &keys).map_err(api_error)?;
    Ok(TaskState::ALL
        .iter()
        .zip(n)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| (s.as_str(), n))
        .collect())
}

/// The breakers of the registered queues.
pub fn breakers(kv: &Kv, now: f64) -> Result<Vec<serde_json::Value>, ApiError> {
    let names = registry::names(kv, keys::QUEUE_NAMES).map_err(api_error)?;
    let keys: Vec<String> = names.iter().map(|q| keys::breaker(q)).collect();
    let found: Vec<Breaker> = kv.get_all(&keys)?;
    Ok(found
        .iter()
        .map(|b| b.status(now, &BreakerConfig::default()))
        .collect())
}
