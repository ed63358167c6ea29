//! What can go wrong serving a request, and the status each failure maps to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Errors of the web layer. Client mistakes are 4xx with a message meant for the user;
/// warehouse or template failures are logged and shown as a short 500/503.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    /// Every connection or request slot is busy, or a query ran too long: come back shortly
    /// (503 with `Retry-After`).
    #[error("{0}")]
    Busy(String),
    #[error("warehouse: {0}")]
    Db(#[from] duckdb::Error),
    #[error(transparent)]
    Warehouse(#[from] magpie_core::WarehouseError),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Unavailable(_) | WebError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the user: the reason for client errors, a generic line for
    /// server faults (whose detail goes to the log).
    pub fn public_message(&self) -> String {
        if self.status().is_client_error() {
            return self.to_string();
        }
        if let WebError::Busy(m) = self {
            tracing::warn!(error = %m, "request shed");
            return m.clone();
        }
        tracing::error!(error = %self, "request failed");
        match self {
            WebError::Unavailable(m) => format!("magpie is not ready: {m}"),
            _ => "something went wrong reading the warehouse; the log has the details".into(),
        }
    }
}

impl WebError {
    /// Seconds a client should wait before trying again, for the `Retry-After` header.
    pub fn retry_after(&self) -> Option<u64> {
        matches!(self, WebError::Busy(_)).then_some(RETRY_AFTER_SECS)
    }

    /// Add `Retry-After` to `response` when this error asks for it.
    pub(crate) fn with_retry_after(&self, mut response: Response) -> Response {
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// What a 503 for a busy server asks clients to wait.
const RETRY_AFTER_SECS: u64 = 2;

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.public_message(), "status": status.as_u16() });
        self.with_retry_after((status, axum::Json(body)).into_response())
    }
}
