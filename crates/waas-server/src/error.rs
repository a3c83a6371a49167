//! Errors: [`ApiError`] for a request (sent as the JSON body of `waas_api::ErrorBody`) and
//! [`ServerError`] for the server as a whole (start-up and shutdown).

use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use thiserror::Error;
use waas_api::{ErrorBody, ErrorCode, NameError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The `--database` value is not something this server can open.
    #[error("unsupported database {0:?}: give a SQLite file path or a sqlite: URL")]
    UnsupportedDatabase(String),
    /// The master key could not be loaded or created.
    #[error("master key: {0}")]
    MasterKey(#[from] crate::sealing::SealError),
    /// The database could not be opened or queried.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database's folder could not be created.
    #[error("cannot create the database folder {path}: {source}")]
    DatabaseDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `--listen`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// A failed request, answered as `{"code", "message", "status"}`.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error with a code and a message for people. The message is sent to the client, so it
    /// must never hold secrets or internal details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The route or resource does not exist.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
}

impl From<NameError> for ApiError {
    fn from(error: NameError) -> Self {
        Self::new(ErrorCode::InvalidArgument, error.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        // The details go to the log, not to the client.
        tracing::error!(%error, "database error");
        Self::new(ErrorCode::Unavailable, "the database is unavailable")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::new(self.code, self.message);
        let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(body)).into_response()
    }
}
