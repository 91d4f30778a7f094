//! Commands for real Celery workers, validated here and carried out by the bridge with
//! Celery's control API: worker control (`POST /api/v1/workers/{id}/control`) and the
//! signal of a revoke with `terminate`. Each becomes an event on the `commands` topic.

use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// Event name of a worker control command.
pub const CONTROL: &str = "control";
/// Largest pool change one command may ask for: a typo must not fork a thousand processes.
pub const MAX_POOL_STEP: u64 = 64;
/// Largest autoscale bound accepted, for the same reason.
pub const MAX_AUTOSCALE: u64 = 1024;
/// Longest queue or task name accepted.
pub const MAX_NAME_LEN: usize = 255;
/// Signals a revoke may terminate a task with (what Celery's `revoke` accepts by name).
pub const SIGNALS: [&str; 7] = [
    "SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2",
];

/// The control actions, as Celery's control API names them.
pub const ACTIONS: [&str; 8] = [
    "pool_grow",
    "pool_shrink",
    "autoscale",
    "add_consumer",
    "cancel_consumer",
    "rate_limit",
    "time_limit",
    "shutdown",
];

/// Validates a control request body (`{"command": action, …arguments}`) for worker
/// `hostname` and returns the command event's payload.
pub fn command(hostname: &str, body: &Map<String, Value>, by: &str) -> Result<Value, ApiError> {
    let action = match body.get("command") {
        Some(Value::String(a)) if ACTIONS.contains(&a.as_str()) => a.as_str(),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "command",
                format!("command must be one of {ACTIONS:?}"),
            ))
        }
        None => return Err(ApiError::invalid_field("command", "command is required")),
    };
    let arguments = match action {
        "pool_grow" | "pool_shrink" => {
            json!({ "n": count(body, "n", 1, MAX_POOL_STEP)?.unwrap_or(1) })
        }
        "autoscale" => autoscale(body)?,
        "add_consumer" | "cancel_consumer" => json!({ "queue": name(body, "queue")? }),
        "rate_limit" => json!({ "task": name(body, "task")?, "rate": rate(body)? }),
        "time_limit" => time_limit(body)?,
        _ => json!({}),
    };
    Ok(json!({
        "command": CONTROL, "action": action, "destination": [hostname],
        "arguments": arguments, "by": by,
    }))
}

/// The signal of a revoke: `None` when not terminating; SIGTERM by default.
pub fn revoke_signal(terminate: bool, signal: Option<&str>) -> Result<Option<String>, ApiError> {
    match (terminate, signal) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(ApiError::invalid_field(
            "signal",
            "signal needs terminate=true",
        )),
        (true, None) => Ok(Some("SIGTERM".to_owned())),
        (true, Some(s)) => {
            let upper = s.to_ascii_uppercase();
            let named = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            SIGNALS
                .contains(&named.as_str())
                .then_some(Some(named))
                .ok_or_else(|| {
                    ApiError::invalid_field("signal", format!("signal must be one of {SIGNALS:?}"))
                })
        }
    }
}

fn count(
    body: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    key,
                    format!("{key} must be an integer from {min} to {max}"),
                )
            }),
    }
}

fn name(body: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    match body.get(key) {
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_NAME_LEN && !s.chars().any(char::is_control) =>
        {
            Ok(s.clone())
        }
        _ => Err(ApiError::invalid_field(
            key,
            format!("{key} must be 1–{MAX_NAME_LEN} printable characters"),
        )),
    }
}

fn autoscale(body: &Map<String, Value>) -> Result<Value, ApiError> {
    let max = count(body, "max", 1, MAX_AUTOSCALE)?
        .ok_or_else(|| ApiError::invalid_field("max", "max is required"))?;
    let min = count(body, "min", 0, MAX_AUTOSCALE)?.unwrap_or(0);
    if min > max {
        return Err(ApiError::invalid_field("min", "min must not exceed max"));
    }
    Ok(json!({ "max": max, "min": min }))
}

/// Celery's rate limit: `"<n>"`, `"<n>/s"`, `"<n>/m"` or `"<n>/h"`; `"0"` or null lifts it.
fn rate(body: &Map<String, Value>) -> Result<Value, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "rate",
            "rate must look like 10/s, 100/m or 1000/h (0 or null lifts it)",
        )
    };
    match body.get("rate") {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(r)) => {
            let (n, unit) = r.split_once('/').unwrap_or((r.as_str(), "s"));
            let ok = n.parse::<f64>().is_ok_and(|n| n >= 0.0) && matches!(unit, "s" | "m" | "h");
            ok.then(|| Value::from(r.clone())).ok_or_else(bad)
        }
        Some(_) => Err(bad()),
    }
}

fn time_limit(body: &Map<String, Value>) -> Result<Value, ApiError> {
    let secs =
        |key: &str| match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().filter(|s| *s > 0.0).map(Some).ok_or_else(|| {
                ApiError::invalid_field(key, format!("{key} must be seconds above 0"))
            }),
        };
    let (soft, hard) = (secs("soft")?, secs("hard")?);
    if soft.is_none() && hard.is_none() {
        return Err(ApiError::invalid_field(
            "soft",
            "give soft and/or hard seconds",
        ));
    }
    if let (Some(s), Some(h)) = (soft, hard) {
        if s > h {
            return Err(ApiError::invalid_field("soft", "soft must not exceed hard"));
        }
    }
    Ok(json!({ "task": name(body, "task")?, "soft": soft, "hard": hard }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn field_of(v: Value) -> Option<String> {
        command("w1", &body(v), "root").unwrap_err().field
    }

    #[test]
    fn builds_each_command_for_one_worker() {
        let c = command(
            "celery@w1",
            &body(json!({"command": "pool_grow", "n": 2})),
            "root",
        )
        .unwrap();
        assert_eq!(
            c,
            json!({"command": "control", "action": "pool_grow", "destination": ["celery@w1"], "arguments": {"n": 2}, "by": "root"})
        );
        let c = command("w", &body(json!({"command": "autoscale", "max": 4})), "r").unwrap();
        assert_eq!(c["arguments"], json!({"max": 4, "min": 0}));
        let c = command(
            "w",
            &body(json!({"command": "rate_limit", "task": "t.add", "rate": "10/m"})),
            "r",
        )
        .unwrap();
        assert_eq!(c["arguments"], json!({"task": "t.add", "rate": "10/m"}));
        let c = command(
            "w",
            &body(json!({"command": "time_limit", "task": "t", "soft": 5, "hard": 10})),
            "r",
        )
        .unwrap();
        assert_eq!(
            c["arguments"],
            json!({"task": "t", "soft": 5.0, "hard": 10.0})
        );
        assert_eq!(
            command("w", &body(json!({"command": "shutdown"})), "r").unwrap()["action"],
            "shutdown"
        );
    }

    #[test]
    fn refuses_bad_arguments_naming_the_field() {
        assert_eq!(field_of(json!({})).as_deref(), Some("command"));
        assert_eq!(
            field_of(json!({"command": "pool_restart"})).as_deref(),
            Some("command")
        );
        assert_eq!(
            field_of(json!({"command": "pool_grow", "n": 0})).as_deref(),
            Some("n")
        );
        assert_eq!(
            field_of(json!({"command": "pool_grow", "n": 65})).as_deref(),
            Some("n")
        );
        assert_eq!(
            field_of(json!({"command": "autoscale", "max": 2, "min": 3})).as_deref(),
            Some("min")
        );
        assert_eq!(
            field_of(json!({"command": "add_consumer"})).as_deref(),
            Some("queue")
        );
        assert_eq!(
            field_of(json!({"command": "rate_limit", "task": "t", "rate": "fast"})).as_deref(),
            Some("rate")
        );
        assert_eq!(
            field_of(json!({"command": "time_limit", "task": "t"})).as_deref(),
            Some("soft")
        );
        assert_eq!(
            field_of(json!({"command": "time_limit", "task": "t", "soft": 9, "hard": 3}))
                .as_deref(),
            Some("soft")
        );
    }

    #[test]
    fn revoke_signals_are_named_and_need_terminate() {
        assert_eq!(revoke_signal(false, None).unwrap(), None);
        assert_eq!(
            revoke_signal(true, None).unwrap().as_deref(),
            Some("SIGTERM")
        );
        assert_eq!(
            revoke_signal(true, Some("kill")).unwrap().as_deref(),
            Some("SIGKILL")
        );
        assert_eq!(
            revoke_signal(true, Some("SIGSEGV"))
                .unwrap_err()
                .field
                .as_deref(),
            Some("signal")
        );
        assert_eq!(
            revoke_signal(false, Some("SIGKILL"))
                .unwrap_err()
                .field
                .as_deref(),
            Some("signal")
        );
    }
}
