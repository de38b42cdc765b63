//! The one error type of the domain. Each variant has a stable machine code;
//! the API maps codes to HTTP statuses and GraphQL `extensions.code` in one place.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credentials, unknown credentials or revoked credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but its role does not allow the action.
    #[error("{0}")]
    Forbidden(String),
    /// Also returned for objects of other workspaces, so existence does not leak.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A `not_found` whose message says exactly what is missing.
    #[error("{0}")]
    Missing(String),
    /// The request itself is malformed (a missing header, an unreadable body).
    #[error("{0}")]
    BadRequest(String),
    #[error("{field}: {message}")]
    InvalidInput { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    /// Something that was valid for a while no longer is (a survey link).
    #[error("{0}")]
    Expired(String),
    /// The server requires TLS and the request came over plain HTTP.
    #[error("this server only accepts HTTPS requests")]
    HttpsRequired,
    /// A dependency (database, queue, bucket) cannot be reached right now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; details go to the log, not to the client.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Stable machine-readable code; never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound { .. } | Error::Missing(_) => "not_found",
            Error::BadRequest(_) => "bad_request",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Conflict(_) => "conflict",
            Error::Expired(_) => "expired",
            Error::HttpsRequired => "https_required",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// The input field at fault, for `invalid_input`.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::InvalidInput {
            field: field.into(),
            message: message.to_string(),
        }
    }

    /// The full message for logs and background records (job records, runs,
    /// the ledger): unlike `Display`, an internal error keeps its cause.
    pub fn cause(&self) -> String {
        match self {
            Error::Internal(cause) => cause.to_string(),
            other => other.to_string(),
        }
    }

    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(e.into())
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        match e {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
                Error::Unavailable(format!("database: {e}"))
            }
            e => Error::Internal(Box::new(e)),
        }
    }
}

impl From<sea_orm::TransactionError<Error>> for Error {
    fn from(e: sea_orm::TransactionError<Error>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(e) => e.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}
