//! Retention of finished tasks (see `vigil_store::retention`), configured by the Spin
//! variables `task_retention_secs` (default a week) and `task_retention_max` (default
//! 1 000 000 finished tasks); `0` turns a rule off. Live tasks are never expired.
//!
//! Components run no timers: a batch that finished tasks expires up to twice as many
//! old ones, and `POST /api/v1/tasks/expire` (admin; the host calls it periodically,
//! a cron job can under `spin up`) runs a larger step.

use spin_sdk::http::Response;
use vigil_core::error::ApiError;
use vigil_store::retention::{self, Policy};

use crate::request::Req;
use crate::store::{api_error, Kv};

/// Default age after which finished tasks expire, seconds (a week).
pub const DEFAULT_MAX_AGE_SECS: f64 = 7.0 * 86_400.0;
/// Default number of finished tasks kept.
pub const DEFAULT_MAX_FINISHED: u64 = 1_000_000;
/// Tasks one `POST /api/v1/tasks/expire` expires at most (a few hundred ms of work).
pub const EXPIRE_PER_CALL: usize = 2_000;
/// Old tasks an ingest expires per task it finished: more than one, so retention
/// catches up after a burst instead of only keeping pace.
pub const EXPIRE_PER_FINISHED: usize = 2;

fn variable<T: std::str::FromStr>(name: &str) -> Option<T> {
    spin_sdk::variables::get(name).ok()?.trim().parse().ok()
}

/// The configured policy.
pub fn policy() -> Policy {
    let age = variable::<f64>("task_retention_secs").unwrap_or(DEFAULT_MAX_AGE_SECS);
    let max = variable::<u64>("task_retention_max").unwrap_or(DEFAULT_MAX_FINISHED);
    Policy {
        max_age_secs: (age > 0.0).then_some(age),
        max_finished: (max > 0).then_some(max),
    }
}

/// After an ingest that finished `finished` tasks: expires up to twice as many. A
/// failure here only delays retention; the ingest itself succeeded.
pub fn after_ingest(kv: &Kv, finished: usize) {
    if finished == 0 {
        return;
    }
    let budget = finished * EXPIRE_PER_FINISHED;
    if let Err(e) = retention::step(kv, &policy(), crate::clock::secs(), budget) {
        eprintln!("retention step failed: {e}");
    }
}

/// The message of a 404 for an unknown task: what retention keeps.
pub fn unknown_task(id: &str) -> ApiError {
    let p = policy();
    let mut kept = Vec::new();
    if let Some(a) = p.max_age_secs {
        kept.push(format!("for {a} s after they finish"));
    }
    if let Some(m) = p.max_finished {
        kept.push(format!("up to the newest {m}"));
    }
    let rule = if kept.is_empty() {
        String::new()
    } else {
        format!(" (finished tasks are kept {})", kept.join(", "))
    };
    ApiError::not_found(format!("no task `{id}`{rule}"))
}

/// `POST /api/v1/tasks/expire` (admin): one retention step.
pub fn run(req: &Req) -> Result<Response, ApiError> {
    crate::auth::admin(req)?;
    let kv = Kv::open()?;
    let r = retention::step(&kv, &policy(), crate::clock::secs(), EXPIRE_PER_CALL)
        .map_err(api_error)?;
    Ok(crate::json_response(
        200,
        &serde_json::json!({ "expired": r.expired.len(), "forgotten": r.forgotten }),
    ))
}
