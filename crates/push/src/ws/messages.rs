//! The client's messages on `/ws` (`ping`, `subscribe`, `refresh`), each answered in
//! the connection's queue, one at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use vigil_core::error::ApiError;
use vigil_transport::stream::websocket::Messages;

use crate::hub::{Queue, Wire};
use crate::{Authorized, PushQuery, PushState};

/// Most values in one filter list of a `subscribe` message.
const MAX_FILTER_VALUES: usize = 64;

/// What one connection knows about itself between client messages.
pub(super) struct Session {
    pub(super) app: PushState,
    pub(super) auth: Authorized,
    /// The filters it connected with, kept so a role change can rebuild them.
    pub(super) query: PushQuery,
    pub(super) id: u64,
    pub(super) queue: Arc<Queue>,
    /// Tells the expiry watcher when a refresh moved the deadline.
    pub(super) deadline: watch::Sender<Instant>,
}

impl Messages for Session {
    fn text(mut self, text: Bytes) -> Pin<Box<dyn Future<Output = Self> + Send>> {
        Box::pin(async move {
            let answer = self.handle(&text).await.to_string();
            self.deadline.send_if_modified(|at| {
                let next = self.auth.deadline();
                std::mem::replace(at, next) != next
            });
            if self.queue.push_control(Wire::Text(answer.into())).is_err() {
                self.queue.close("slow consumer: answers are not read");
            }
            self
        })
    }
}

impl Session {
    /// The answer to one client message; `id`, when the client sent one, is echoed so
    /// the client can match answers to requests (its acknowledgement).
    async fn handle(&mut self, text: &[u8]) -> Value {
        let Ok(msg) = serde_json::from_slice::<Value>(text) else {
            return error(None, &ApiError::bad_request("malformed JSON"));
        };
        let id = msg.get("id").cloned();
        let answer = match msg.get("type").and_then(Value::as_str) {
            Some("ping") => Ok(json!({ "type": "pong", "timestamp": msg.get("timestamp") })),
            Some("subscribe") => self.subscribe(&msg).await,
            Some("refresh") => self.refresh(&msg).await,
            Some(other) => Err(ApiError::bad_request(format!(
                "unknown message type `{other}` (ping, subscribe, refresh)"
            ))),
            None => Err(ApiError::bad_request("message needs a `type`")),
        };
        match answer {
            Ok(mut v) => {
                if let (Some(obj), Some(id)) = (v.as_object_mut(), id) {
                    obj.insert("id".into(), id);
                }
                v
            }
            Err(e) => error(id, &e),
        }
    }

    /// `{"type":"subscribe","topics":[…],"queues":[…],"states":[…],"ids":[…]}` replaces
    /// the filter; once answered, every later event is decided with the new one.
    async fn subscribe(&mut self, msg: &Value) -> Result<Value, ApiError> {
        let mut query = PushQuery {
            encoding: self.query.encoding.clone(),
            ..PushQuery::default()
        };
        for (field, slot) in [
            ("topics", &mut query.topics),
            ("queues", &mut query.queues),
            ("states", &mut query.states),
            ("ids", &mut query.ids),
        ] {
            *slot = string_list(msg, field)?;
        }
        let spec = crate::spec(&self.auth.claims, &query, true).map_err(|e| e.0)?;
        let Some(f) = spec.filter else {
            return Err(ApiError::internal("no filter"));
        };
        if !self.app.hub().update_filter(self.id, Some(f.clone())).await {
            return Err(ApiError::unavailable("the subscription has ended"));
        }
        self.query = query;
        Ok(json!({
            "type": "subscribed",
            "topics": f.topics, "queues": f.queues, "states": f.states, "ids": f.keys,
        }))
    }

    /// `{"type":"refresh","token":…}`: keeps the connection alive past the old token's
    /// expiry; a changed role changes what it receives from now on.
    async fn refresh(&mut self, msg: &Value) -> Result<Value, ApiError> {
        let token = msg
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_field("token", "expected the new token"))?;
        let next = self.auth.refresh(token, self.app.verifier())?;
        if next.claims.role != self.auth.claims.role {
            let spec = crate::spec(&next.claims, &self.query, true).map_err(|e| e.0)?;
            if !self.app.hub().update_filter(self.id, spec.filter).await {
                return Err(ApiError::unavailable("the subscription has ended"));
            }
        }
        self.auth = next;
        Ok(json!({
            "type": "refreshed",
            "exp": self.auth.claims.exp,
            "role": self.auth.claims.role.as_str(),
        }))
    }
}

/// A comma-joined list from a JSON array of strings (at most [`MAX_FILTER_VALUES`]).
fn string_list(msg: &Value, field: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = msg.get(field) else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .filter(|a| a.len() <= MAX_FILTER_VALUES)
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .filter(|a| a.iter().all(|s| !s.contains(',')))
        .ok_or_else(|| {
            ApiError::invalid_field(
                field,
                format!("expected an array of at most {MAX_FILTER_VALUES} strings"),
            )
        })?;
    Ok(Some(items.join(",")))
}

fn error(id: Option<Value>, e: &ApiError) -> Value {
    let mut v = json!({ "type": "error", "code": e.code, "error": e.message });
    if let (Some(obj), Some(id)) = (v.as_object_mut(), id) {
        obj.insert("id".into(), id);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_lists_must_be_short_arrays_of_strings() {
        let ok = json!({ "topics": ["celery:tasks", "workers"] });
        assert_eq!(
            string_list(&ok, "topics").unwrap().as_deref(),
            Some("celery:tasks,workers")
        );
        assert_eq!(string_list(&ok, "queues").unwrap(), None);
        for bad in [
            json!({ "topics": "x" }),
            json!({ "topics": [1] }),
            json!({ "topics": ["a,b"] }),
        ] {
            assert_eq!(
                string_list(&bad, "topics").unwrap_err().code,
                "invalid_field"
            );
        }
        let many: Vec<String> = (0..=MAX_FILTER_VALUES).map(|i| i.to_string()).collect();
        assert!(string_list(&json!({ "ids": many }), "ids").is_err());
    }

    #[test]
    fn errors_echo_the_request_id() {
        let e = error(Some(json!(7)), &ApiError::bad_request("nope"));
        assert_eq!(
            e,
            json!({ "type": "error", "code": "bad_request", "error": "nope", "id": 7 })
        );
    }
}
