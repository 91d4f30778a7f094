//! Refusals from the host's own endpoints, in the same JSON shape the components use.

use axum::response::{IntoResponse, Response};
use vigil_core::error::ApiError;

/// An [`ApiError`] axum can return.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<vigil_core::auth::TokenError> for HttpError {
    fn from(e: vigil_core::auth::TokenError) -> Self {
        Self(e.into())
    }
}

impl HttpError {
    /// The JSON error response.
    pub fn into_response_inner(self) -> Response {
        let status = http::StatusCode::from_u16(self.0.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.0.to_json(),
        )
            .into_response()
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        self.into_response_inner()
    }
}
