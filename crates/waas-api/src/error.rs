//! The JSON body of every failed request: `{"code": "...", "message": "...", "status": 404}`.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code. Clients branch on it; messages are for people and may
/// change. New codes may be added, so clients must treat unknown ones as [`ErrorCode::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a bad resource name, a value out of range.
    InvalidArgument,
    /// The request carries no valid credentials.
    Unauthenticated,
    /// The caller is known but may not do this.
    PermissionDenied,
    /// The resource (or route) does not exist.
    NotFound,
    /// The route exists, but not for this HTTP method.
    MethodNotAllowed,
    /// The resource exists already.
    AlreadyExists,
    /// The request conflicts with the resource's current state (a concurrent change, a finished round).
    Aborted,
    /// The system is not in a state the request needs (e.g. a device without a pairing).
    FailedPrecondition,
    /// Too many requests or failed attempts; try again later.
    ResourceExhausted,
    /// The server is shutting down or a dependency (the database) is unreachable for now: the
    /// same request may be sent again after `retry_after_seconds`.
    Unavailable,
    /// The route exists in the API but this server does not implement it yet.
    Unimplemented,
    /// A bug or an unexpected failure on the server.
    Internal,
    /// A code this client does not know yet (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the server answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument | Self::FailedPrecondition => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::AlreadyExists | Self::Aborted => 409,
            Self::ResourceExhausted => 429,
            Self::Unimplemented => 501,
            Self::Unavailable => 503,
            Self::Internal | Self::Unknown => 500,
        }
    }
}

/// The JSON body of an error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people. Never contains secrets.
    pub message: String,
    /// The HTTP status of the response, repeated so the body stands on its own in logs.
    pub status: u16,
    /// A finer reason within the code, when a client can act on it (e.g. `CLOCK_SKEW`, see
    /// [`crate::auth::reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the request may be tried again, in seconds (with reason `PASSCODE_BACKOFF`, and with
    /// code `UNAVAILABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl ErrorBody {
    /// An error body whose status follows from its code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: code.http_status(),
            reason: None,
            retry_after_seconds: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_stable_code_strings() {
        let body = ErrorBody::new(ErrorCode::NotFound, "no such pool");
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"code": "NOT_FOUND", "message": "no such pool", "status": 404})
        );
    }

    #[test]
    fn every_code_has_its_http_status() {
        let expected = [
            (ErrorCode::InvalidArgument, "INVALID_ARGUMENT", 400),
            (ErrorCode::FailedPrecondition, "FAILED_PRECONDITION", 400),
            (ErrorCode::Unauthenticated, "UNAUTHENTICATED", 401),
            (ErrorCode::PermissionDenied, "PERMISSION_DENIED", 403),
            (ErrorCode::NotFound, "NOT_FOUND", 404),
            (ErrorCode::MethodNotAllowed, "METHOD_NOT_ALLOWED", 405),
            (ErrorCode::AlreadyExists, "ALREADY_EXISTS", 409),
            (ErrorCode::Aborted, "ABORTED", 409),
            (ErrorCode::ResourceExhausted, "RESOURCE_EXHAUSTED", 429),
            (ErrorCode::Internal, "INTERNAL", 500),
            (ErrorCode::Unimplemented, "UNIMPLEMENTED", 501),
            (ErrorCode::Unavailable, "UNAVAILABLE", 503),
        ];
        for (code, name, status) in expected {
            assert_eq!(code.http_status(), status, "{name}");
            assert_eq!(serde_json::to_value(code).unwrap(), name);
        }
    }

    #[test]
    fn unknown_codes_from_a_newer_server_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":"SOMETHING_NEW","message":"m","status":418}"#).unwrap();
        assert_eq!(body.code, ErrorCode::Unknown);
        assert_eq!(body.status, 418);
    }
}
