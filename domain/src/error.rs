//! The domain layer's one error type. Adapters (server functions, `/api/v1`) map each variant
//! to an HTTP status; `Internal` carries the cause for the logs only, never for the browser.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainError {
    /// The caller is not signed in (or the credentials are wrong).
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The input is malformed or fails validation; nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The input is valid but conflicts with existing state (duplicate name, bad transition).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; `retry_after_secs` says when to try again.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// Lookout is at capacity for this kind of work right now (e.g. every password-hashing
    /// slot is busy); the caller should retry after `retry_after_secs`. Nothing was written.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_secs: u64,
    },
    /// Something failed inside Lookout. The string is for logs; adapters show a generic message.
    #[error("internal error")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::Conflict(msg.into())
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// The HTTP status this error maps to, in every adapter.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Unauthenticated(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Invalid(_) => 422,
            Self::Conflict(_) => 409,
            Self::RateLimited { .. } => 429,
            Self::Unavailable { .. } => 503,
            Self::Internal(_) => 500,
        }
    }

    /// The message a user may see. Internal causes are replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => {
                "Something went wrong inside Lookout; the details are in the server log.".into()
            }
            other => other.to_string(),
        }
    }

    /// A short machine-readable code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// What a caller sees while the database cannot answer (restarting, unreachable, paused
/// past the pool's timeout, out of connections): nothing was written, try again shortly.
pub const DATABASE_UNAVAILABLE: &str =
    "The database is unavailable right now; nothing was saved. Try again in a few seconds.";

#[cfg(feature = "server")]
impl From<sqlx::Error> for DomainError {
    fn from(e: sqlx::Error) -> Self {
        let unavailable = |message: &str, retry_after_secs: u64| {
            tracing::warn!(cause = %e, "database unavailable");
            Self::Unavailable {
                message: message.into(),
                retry_after_secs,
            }
        };
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound("not found".into()),
            // Text PostgreSQL cannot store: a NUL character (U+0000) in a string, or `\u0000`
            // in JSON. The statement failed, so its transaction writes nothing.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021") | Some("22P05")) =>
            {
                Self::Invalid("text may not contain NUL characters (U+0000)".into())
            }
            // disk_full: nothing was committed.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("53100") => unavailable(
                "The database is out of disk space; nothing was saved. An administrator must free space.",
                30,
            ),
            // Class 08 (connection exception), 57P01–57P05 (admin shutdown, crash shutdown,
            // cannot connect now, database dropped, idle session timeout), 53300 (too many
            // connections).
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("57P") || c == "53300"
                }) =>
            {
                unavailable(DATABASE_UNAVAILABLE, 5)
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => unavailable(DATABASE_UNAVAILABLE, 5),
            _ => Self::Internal(format!("database: {e}")),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
