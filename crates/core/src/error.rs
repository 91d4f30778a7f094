//! The one error shape every refusal uses, whatever the endpoint or transport.

use serde::Serialize;

/// A refusal: an HTTP status, a stable machine-readable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Stable code clients can match on, e.g. `invalid_field`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, when one field is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400: the body is not what the endpoint reads (e.g. malformed JSON).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 401: no token, or one that does not verify.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// 403: a valid token whose role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404: no such resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 405: the route exists but not with this method.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "method_not_allowed", message)
    }

    /// 413: the body is larger than the endpoint accepts.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 422: well-formed, but a field has the wrong type or value.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(422, "invalid_field", message);
        e.field = Some(field.into());
        e
    }

    /// 429: the caller sends too many requests; retry after `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self::new(
            429,
            "rate_limited",
            format!("too many requests; retry after {secs} s"),
        )
    }

    /// 500: something failed inside; the message must not leak internals.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// 409: the request conflicts with the record's state (e.g. revoking a finished task).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 503: the queue's circuit breaker is open; new tasks for it are refused.
    pub fn circuit_open(queue: &str, reason: Option<&str>) -> Self {
        let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
        let mut e = Self::new(
            503,
            "circuit_open",
            format!("the circuit breaker of queue `{queue}` is open{why}"),
        );
        e.field = Some("queue".into());
        e
    }

    /// 503: the service cannot take this now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "unavailable", message)
    }

    /// A refusal with `status` and the code that status always carries, for refusals
    /// made outside an endpoint (the server's own limits, method and query checks).
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        let code = match status {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "request_timeout",
            413 => "payload_too_large",
            414 => "uri_too_long",
            422 => "invalid_field",
            429 => "rate_limited",
            431 => "headers_too_large",
            503 => "unavailable",
            500..=599 => "internal",
            _ => "error",
        };
        Self::new(status, code, message)
    }

    /// The JSON body: `{"error": {"status", "code", "message", "field"?}}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_shape() {
        let body: serde_json::Value = serde_json::from_str(
            &ApiError::invalid_field("retries", "must be an integer").to_json(),
        )
        .unwrap();
        assert_eq!(body["error"]["status"], 422);
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(body["error"]["field"], "retries");
        let plain: serde_json::Value =
            serde_json::from_str(&ApiError::not_found("no task").to_json()).unwrap();
        assert!(plain["error"].get("field").is_none());
    }
}
