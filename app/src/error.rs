//! The UI layer's one error type: what a server function returns to the browser. It carries
//! the HTTP status, a stable code and a message that is safe to show (never a database error).

use domain::DomainError;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl AppError {
    pub fn is_forbidden(&self) -> bool {
        self.status == 403
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        #[cfg(feature = "ssr")]
        if let DomainError::Internal(cause) = &e {
            tracing::error!(%cause, "server function failed");
        }
        let err = AppError {
            status: e.status_code(),
            code: e.code().to_string(),
            message: e.public_message(),
        };
        #[cfg(feature = "ssr")]
        crate::response::set_error_status(err.status);
        err
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let (status, code, message) = match value {
            ServerFnErrorErr::Args(m) => (400, "bad_request", format!("invalid input: {m}")),
            ServerFnErrorErr::MissingArg(m) => (400, "bad_request", format!("missing input: {m}")),
            ServerFnErrorErr::Request(m) => (
                0,
                "network",
                format!("could not reach the Lookout server: {m}"),
            ),
            ServerFnErrorErr::Deserialization(m) | ServerFnErrorErr::Serialization(m) => {
                (400, "bad_request", format!("malformed data: {m}"))
            }
            other => (500, "internal", other.to_string()),
        };
        #[cfg(feature = "ssr")]
        if status >= 400 {
            crate::response::set_error_status(status);
        }
        AppError {
            status,
            code: code.into(),
            message,
        }
    }
}
