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
    /// A unique index refused a row: two requests created the same thing at
    /// once (the same code as `Conflict`; a variant of its own so that rules
    /// reading `Conflict` as a domain answer never mistake it for one).
    #[error("it already exists: another request created the same name or slug at the same time")]
    Duplicate(#[source] sea_orm::DbErr),
    /// Something that was valid for a while no longer is (a survey link).
    #[error("{0}")]
    Expired(String),
    /// The request body is larger than the server accepts (`MAX_BODY_BYTES`).
    #[error("the request body is larger than {limit} bytes (MAX_BODY_BYTES)")]
    PayloadTooLarge { limit: usize },
    /// The route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is in a format the route does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The server requires TLS and the request came over plain HTTP.
    #[error("this server only accepts HTTPS requests")]
    HttpsRequired,
    /// Too many requests of one caller in a short time (survey page submits).
    #[error("too many requests: try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
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
            Error::Conflict(_) | Error::Duplicate(_) => "conflict",
            Error::Expired(_) => "expired",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::HttpsRequired => "https_required",
            Error::RateLimited { .. } => "rate_limited",
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

    /// A failure of the database itself (unreachable, restarting, busy, a
    /// dropped connection) rather than of the work: a job that meets one is
    /// run again instead of failing its domain rows.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable(message) => message.starts_with(DATABASE),
            Error::Internal(cause) => {
                cause
                    .downcast_ref::<sea_orm::DbErr>()
                    .is_some_and(db_err_is_transient)
                    || cause
                        .downcast_ref::<sqlx::Error>()
                        .is_some_and(sqlx_is_transient)
            }
            _ => false,
        }
    }

    /// The full message for logs and background records (job records, runs,
    /// the ledger): unlike `Display`, an internal error keeps its cause.
    pub fn cause(&self) -> String {
        match self {
            Error::Internal(cause) => cause.to_string(),
            Error::Duplicate(cause) => format!("{self}: {cause}"),
            other => other.to_string(),
        }
    }

    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(e.into())
    }
}

/// How `Unavailable` messages about the database begin (see [`Error::is_transient`]).
pub(crate) const DATABASE: &str = "database";

fn db_err_is_transient(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            sqlx_is_transient(s)
        }
        _ => false,
    }
}

fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // SQLite: busy, locked, busy snapshot.
            Some("5" | "6" | "517")
            // PostgreSQL: shutting down or starting, connection failure,
            // serialization failure, deadlock.
            | Some("57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006" | "40001" | "40P01")
        ),
        _ => false,
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        // Two requests creating the same thing at once: the loser of the
        // unique index gets what a sequential caller would have (a 409).
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
            return Error::Duplicate(e);
        }
        match e {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
                Error::Unavailable(format!("{DATABASE}: {e}"))
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
