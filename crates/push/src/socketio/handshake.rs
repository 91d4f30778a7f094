//! What a Socket.IO client may put in its handshake's `auth`: the token, a resume
//! cursor, rooms to be in from the start, and the encoding.

use serde_json::Value;
use vigil_core::error::ApiError;

use super::rooms;

/// What a client may put in the handshake's `auth`.
#[derive(Debug, Default)]
pub(super) struct Handshake {
    pub(super) token: Option<String>,
    /// Resume after this sequence number (the last `seq` the client saw).
    pub(super) since: Option<u64>,
    /// Rooms to be in from the start, so a resuming admin-namespace socket is replayed
    /// the events of its rooms.
    pub(super) rooms: Vec<String>,
    /// `encoding: "msgpack"`: `batch_update` as MessagePack (gzip over 1 KiB).
    pub(super) binary: bool,
}

impl Handshake {
    pub(super) fn parse(auth: Option<&Value>) -> Result<Self, ApiError> {
        let Some(auth) = auth else {
            return Ok(Self::default());
        };
        let since = match auth.get("since") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(bad_since)?),
            Some(Value::String(s)) => Some(s.parse().map_err(|_| bad_since())?),
            Some(_) => return Err(bad_since()),
        };
        let rooms = match auth.get("rooms") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.len() <= rooms::MAX_ROOMS => a
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(bad_rooms)?,
            Some(_) => return Err(bad_rooms()),
        };
        let binary = match auth.get("encoding").and_then(Value::as_str) {
            None | Some("json") => false,
            Some("msgpack") => true,
            Some(other) => {
                return Err(ApiError::invalid_field(
                    "encoding",
                    format!("unsupported encoding `{other}` (json or msgpack)"),
                ))
            }
        };
        Ok(Self {
            token: auth.get("token").and_then(Value::as_str).map(str::to_owned),
            since,
            rooms,
            binary,
        })
    }
}

fn bad_since() -> ApiError {
    ApiError::invalid_field(
        "since",
        "since must be the last sequence number seen (a non-negative integer)",
    )
}

fn bad_rooms() -> ApiError {
    ApiError::invalid_field(
        "rooms",
        format!(
            "expected an array of at most {} room names",
            rooms::MAX_ROOMS
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn handshake_reads_token_cursor_rooms_and_encoding() {
        let hs = Handshake::parse(Some(&json!({
            "token": "t", "since": 42, "rooms": ["celery:tasks"], "encoding": "msgpack"
        })))
        .unwrap();
        assert_eq!(hs.token.as_deref(), Some("t"));
        assert_eq!(hs.since, Some(42));
        assert_eq!(hs.rooms, ["celery:tasks"]);
        assert!(hs.binary);
        assert_eq!(
            Handshake::parse(Some(&json!({ "since": "7" })))
                .unwrap()
                .since,
            Some(7)
        );
        for bad in [
            json!({ "since": -1 }),
            json!({ "since": "x" }),
            json!({ "rooms": "celery:tasks" }),
            json!({ "encoding": "xml" }),
        ] {
            assert_eq!(
                Handshake::parse(Some(&bad)).unwrap_err().status,
                422,
                "{bad}"
            );
        }
    }
}
