//! Errors: [`ApiError`] for a request (sent as the JSON body of `waas_api::ErrorBody`) and
//! [`ServerError`] for the server as a whole (start-up and shutdown).

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use thiserror::Error;
use waas_api::{ErrorBody, ErrorCode, NameError};

use crate::store::StoreError;

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The `--database` value is not something this server can open (its password, if any,
    /// left out: see [`ServerError::unsupported_database`]).
    #[error(
        "unsupported database {0:?}: give a SQLite file path, a sqlite: URL or a postgres:// URL"
    )]
    UnsupportedDatabase(String),
    /// PostgreSQL could not be reached, or refused the connection, at start.
    #[error("cannot connect to the database {database}: {reason}")]
    DatabaseConnect {
        /// `postgres://user@host:port/database`, never the password.
        database: String,
        /// What failed.
        reason: String,
    },
    /// PostgreSQL would not keep every commit the server answers after (see the store's
    /// durability check).
    #[error("the database {database} does not keep commits safely: {reason}")]
    DatabaseNotDurable {
        /// `postgres://user@host:port/database`, never the password.
        database: String,
        /// Which setting, and what it risks.
        reason: String,
    },
    /// An operator command names a database that does not exist.
    #[error("no database at {0}")]
    NoDatabase(String),
    /// The server's own secrets (its OPAQUE keys) could not be made or read.
    #[error("server secret: {0}")]
    ServerSecret(String),
    /// A flag's value is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The master key could not be loaded or created.
    #[error("master key: {0}")]
    MasterKey(#[from] crate::sealing::SealError),
    /// The database could not be opened or queried.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The store failed at start-up.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The development API key could not be created or read.
    #[error("development API key {path}: {message}")]
    DevApiKey {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
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

impl ServerError {
    /// [`ServerError::UnsupportedDatabase`] of a `--database` value, a URL's password replaced by
    /// `***` (`mysql://user:***@host/db`): the message is printed and logged.
    pub fn unsupported_database(database: &str) -> Self {
        // The user information ends at the last `@`: a raw password may hold `@`, `/` or `:`
        // itself, and anything up to the last `@` but the user name is hidden.
        let redacted = match database.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split(':').next().unwrap_or_default();
                    let hidden = if user_info.contains(':') { ":***" } else { "" };
                    format!("{scheme}://{user}{hidden}@{host}")
                }
                None => database.to_owned(),
            },
            None => database.to_owned(),
        };
        Self::UnsupportedDatabase(redacted)
    }
}

/// A failed request, answered as `{"code", "message", "status"}` (and `reason`, when set).
#[derive(Debug, Error)]
#[error("{message}")]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    reason: Option<Cow<'static, str>>,
    retry_after_seconds: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message for people. The message is sent to the client, so it
    /// must never hold secrets or internal details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reason: None,
            retry_after_seconds: None,
        }
    }

    /// The same error with a finer reason a client can act on (`waas_api::auth::reason`, …).
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(Cow::Borrowed(reason));
        self
    }

    /// The same error, telling the client when it may try again (`retryAfterSeconds` in the
    /// body, and the `Retry-After` header).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The request is malformed.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The caller is not authenticated.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// The caller may not do this.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    /// The resource is not in the state the request needs.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedPrecondition, message)
    }

    /// A bug or a damaged database: the details go to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code, self.message.clone());
        body.reason = self.reason.as_deref().map(str::to_owned);
        body.retry_after_seconds = self.retry_after_seconds;
        body
    }

    /// An error as it was stored with an operation (its reason and retry time kept), to answer
    /// again.
    pub fn from_body(body: ErrorBody) -> Self {
        Self {
            code: body.code,
            message: body.message,
            reason: body.reason.map(Cow::Owned),
            retry_after_seconds: body.retry_after_seconds,
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

/// How long a client is told to wait before it sends a request again after `UNAVAILABLE`: about
/// what a PostgreSQL restart takes.
pub(crate) const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 1;

impl ApiError {
    /// The database is out of reach for now: `UNAVAILABLE` (503) with `Retry-After`. Nothing of
    /// the request was written (or, if the connection was lost during the commit, all of it
    /// was), so the client may send the same request again.
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "the database is unavailable: try again shortly",
        )
        .with_retry_after(UNAVAILABLE_RETRY_AFTER_SECONDS)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        // The details go to the log, not to the client. Which errors pass by themselves is
        // decided in one place, `store::is_transient`.
        match error {
            StoreError::Unavailable(error) => {
                tracing::warn!(%error, "database unavailable");
                Self::unavailable()
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = body.retry_after_seconds;
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_url_is_named_without_its_password() {
        let text =
            ServerError::unsupported_database("mysql://waas:s3cret@db:3306/waas").to_string();
        assert!(text.contains("\"mysql://waas:***@db:3306/waas\""), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        // A raw password with `@` or `/` in it is hidden whole.
        for url in ["mysql://waas:s3@cr/et@db/waas", "mysql://waas:a@b@db/waas"] {
            let text = ServerError::unsupported_database(url).to_string();
            assert!(text.contains("\"mysql://waas:***@db/waas\""), "{text}");
        }
        let text = ServerError::unsupported_database("mysql://db/waas").to_string();
        assert!(text.contains("\"mysql://db/waas\""), "{text}");
    }

    #[test]
    fn a_transient_database_error_is_unavailable_with_a_retry_time() {
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
        ] {
            let response = ApiError::from(StoreError::from(error)).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        }
        let body = ApiError::from(StoreError::from(sqlx::Error::PoolTimedOut)).body();
        assert_eq!(
            (body.code, body.status, body.retry_after_seconds),
            (
                ErrorCode::Unavailable,
                503,
                Some(UNAVAILABLE_RETRY_AFTER_SECONDS)
            )
        );
    }

    #[test]
    fn any_other_database_error_is_internal() {
        let body = ApiError::from(StoreError::from(sqlx::Error::RowNotFound)).body();
        assert_eq!(
            (body.code, body.status, body.retry_after_seconds),
            (ErrorCode::Internal, 500, None)
        );
        assert_eq!(body.message, "internal error", "no detail for the client");
    }
}
