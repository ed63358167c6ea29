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
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
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
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the user: the reason for client errors, a generic line for
    /// server faults (whose detail goes to the log).
    pub fn public_message(&self) -> String {
        if self.status().is_client_error() {
            return self.to_string();
        }
        tracing::error!(error = %self, "request failed");
        match self {
            WebError::Unavailable(m) => format!("magpie is not ready: {m}"),
            _ => "something went wrong reading the warehouse; the log has the details".into(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.public_message(), "status": status.as_u16() });
        (status, axum::Json(body)).into_response()
    }
}
