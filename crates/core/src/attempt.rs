//! Attempts: a Celery task runs once, then once more per retry, under the same id. Each
//! run is an [`Attempt`] with its own times, worker and outcome; the task record shows
//! the latest, as Celery's own `State` does.
//!
//! Which attempt an event belongs to: `task-sent` and `task-received` carry `retries`,
//! the attempt's number. The other events do not, so they go to the latest attempt that
//! has reached the stage before theirs: `task-started` to the latest received one,
//! `task-succeeded`/`-failed`/`-retried`/`-progress` to the latest started one (a retry's
//! `task-sent` is published before the `task-retried` of the run that asked for it),
//! `task-revoked`/`-rejected` to the latest attempt.

use serde::{Deserialize, Serialize};

use crate::ingest::TaskEvent;
use crate::task::{Task, TaskState};

/// Attempts kept per task; older ones are dropped. A task retried forever (Celery's
/// `max_retries=None`) must not grow its record without bound, and nobody reads the
/// hundredth-last attempt.
pub const MAX_ATTEMPTS: usize = 100;

/// One run of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Celery's `retries` for this run: 0 for the first.
    pub retries: u64,
    /// Where this run got to.
    pub state: TaskState,
    /// Worker that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When it was sent, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<f64>,
    /// When a worker received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<f64>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    /// When it ended (succeeded, failed, retried, revoked or rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    /// Run time, seconds, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<f64>,
    /// Exception, when it failed or asked for a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}

impl Attempt {
    fn new(retries: u64) -> Self {
        Self {
            retries,
            state: TaskState::Pending,
            worker: None,
            sent_at: None,
            received_at: None,
            started_at: None,
            finished_at: None,
            runtime: None,
            exception: None,
        }
    }
}

/// Records `ev` (at `ts`) in the attempt it belongs to, then shows the latest attempt's
/// times on the task. Custom events (no state) change no attempt.
pub fn record(t: &mut Task, ev: &TaskEvent, ts: f64) {
    let Some(state) = ev.state else { return };
    let i = attempt_index(&mut t.attempts, ev, state);
    let a = &mut t.attempts[i];
    if state.rank() >= a.state.rank() {
        a.state = state;
    }
    let slot = match state {
        TaskState::Pending => &mut a.sent_at,
        TaskState::Received => &mut a.received_at,
        TaskState::Started => &mut a.started_at,
        TaskState::Progress => return,
        _ => &mut a.finished_at,
    };
    slot.get_or_insert(ts);
    if ev.kind != "task-sent" && ev.fields.hostname.is_some() {
        a.worker.clone_from(&ev.fields.hostname);
    }
    a.runtime = ev.fields.runtime.or(a.runtime);
    if ev.fields.exception.is_some() {
        a.exception.clone_from(&ev.fields.exception);
    }
    let latest = |f: fn(&Attempt) -> Option<f64>| t.attempts.iter().rev().find_map(f);
    t.sent_at = latest(|a| a.sent_at);
    t.received_at = latest(|a| a.received_at);
    t.started_at = latest(|a| a.started_at);
}

/// The index of the attempt `ev` belongs to, created if it is new.
fn attempt_index(attempts: &mut Vec<Attempt>, ev: &TaskEvent, state: TaskState) -> usize {
    let numbered = matches!(state, TaskState::Pending | TaskState::Received);
    let reached = |stage: fn(&Attempt) -> bool| attempts.iter().rposition(stage);
    let found = match state {
        _ if numbered || attempts.is_empty() => {
            let n = ev
                .fields
                .retries
                .unwrap_or_else(|| attempts.last().map_or(0, |a| a.retries));
            return numbered_index(attempts, n);
        }
        TaskState::Started => reached(|a| a.received_at.is_some()),
        TaskState::Revoked | TaskState::Rejected => None,
        _ => reached(|a| a.started_at.is_some()),
    };
    found.unwrap_or(attempts.len() - 1)
}

/// The attempt numbered `n`, inserted in order when missing (oldest dropped past
/// [`MAX_ATTEMPTS`]).
fn numbered_index(attempts: &mut Vec<Attempt>, n: u64) -> usize {
    match attempts.binary_search_by_key(&n, |a| a.retries) {
        Ok(i) => i,
        Err(i) => {
            attempts.insert(i, Attempt::new(n));
            if attempts.len() > MAX_ATTEMPTS {
                attempts.remove(0);
                return i.saturating_sub(1);
            }
            i
        }
    }
}
