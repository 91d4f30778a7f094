//! `GET /api/v1/events?since=N&timeout=S&topics=a,b&limit=L`: the event feed. Returns
//! every event after sequence N, in order, none missing (up to `limit`), or waits up to
//! S seconds for the next one. When N is older than the kept history, or past the head
//! (a cursor from a history this server does not have), it answers `{"reset":true}`:
//! refetch the snapshot and continue from its `seq`.

use serde_json::{json, Value};
use spin_sdk::http::Response;
use vigil_core::auth::Role;
use vigil_core::error::ApiError;
use vigil_core::event::{self, Event};
use vigil_core::{jobs, keys};
use vigil_rules::park::Interest;

use crate::request::Req;
use crate::routes::wait::{Next, Wait, MAX_WAIT_SECS};
use crate::store::Kv;

/// Events one answer carries when the client gives no `limit`.
const DEFAULT_LIMIT: u64 = 500;

/// The feed. Producers may read it too, for the `commands` topic only: that is how a
/// worker or bridge picks up revocations and job submissions.
pub fn get(req: &Req) -> Result<Response, ApiError> {
    let claims = crate::auth::claims(req)?;
    let only_commands = req.query_param("topics").as_deref() == Some(event::COMMANDS_TOPIC);
    if claims.role == Role::Producer && !only_commands {
        return Err(ApiError::forbidden(
            "producers may read only `topics=commands`",
        ));
    }
    let kv = Kv::open()?;
    let head = kv.head()?;
    // No `since` is "from now": from where it first parked, once parked (the host says).
    let since = req.query_u64("since", 0..=u64::MAX, req.park_since.unwrap_or(head))?;
    if since > head {
        return Ok(crate::json_response(
            200,
            &json!({ "reset": true, "seq": head }),
        ));
    }
    let timeout = req.query_u64("timeout", 0..=MAX_WAIT_SECS, 30)?;
    let limit = req.query_u64("limit", 1..=5000, DEFAULT_LIMIT)?;
    let topics: Vec<String> = req
        .query_param("topics")
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let wanted = |e: &Event| {
        (topics.is_empty() || topics.contains(&e.topic))
            && vigil_rules::may_see(claims.sees(), e.owner.as_deref(), Some(&e.topic))
    };
    let wait = Wait::new(req, timeout);
    let interest = match topics.is_empty() {
        true => Interest::Any,
        false => Interest::Topics(topics.join(",")),
    };
    let mut cursor = since;
    loop {
        let head = kv.head()?;
        let mut events: Vec<Value> = Vec::new();
        while cursor < head && (events.len() as u64) < limit {
            let Some(e) = kv.get::<Event>(&keys::event(cursor + 1))? else {
                // The next event is gone from the bounded history.
                return Ok(crate::json_response(
                    200,
                    &json!({ "reset": true, "seq": head }),
                ));
            };
            // An entry and what derives from it share its `seq`: they go in one answer.
            let entry: Vec<Event> = jobs::with_derived(e).filter(&wanted).collect();
            if !events.is_empty() && events.len() + entry.len() > limit as usize {
                break;
            }
            cursor += 1;
            events.extend(
                entry
                    .iter()
                    .map(|e| serde_json::to_value(e).unwrap_or_default()),
            );
        }
        if events.is_empty() {
            match wait.next(cursor, interest.clone(), &claims) {
                Next::LookAgain => continue,
                Next::Park(answer) => return Ok(answer),
                Next::Answer => {}
            }
        }
        return Ok(crate::json_response(
            200,
            &json!({ "events": events, "seq": cursor }),
        ));
    }
}
