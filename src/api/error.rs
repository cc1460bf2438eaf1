//! The error body of the contract, `{"code", "message", "details"}` with gRPC codes, mapped to
//! HTTP statuses as grpc-gateway maps them. Unexpected errors are logged here with their cause
//! and answered with a generic message, so no internals reach a caller.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// gRPC status codes used by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(serialize_with = "code_number")]
    pub code: Code,
    pub message: String,
    pub details: Vec<String>,
    /// Sent as `Retry-After` (seconds) when set: rate limits.
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

fn code_number<S: serde::Serializer>(code: &Code, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i32(*code as i32)
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after_secs: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds);
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    /// Logs the cause for operators; the caller only learns that something went wrong.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error while serving a request");
        Self::new(Code::Internal, "internal error; the failure was logged")
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable while serving a request");
        Self::new(
            Code::Unavailable,
            "the service is temporarily unavailable; retry later",
        )
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::Error;
        match error {
            Error::DatabaseError(diesel::result::DatabaseErrorKind::ClosedConnection, _)
            | Error::BrokenTransactionManager => ApiError::unavailable(error),
            other => ApiError::internal(other),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    /// No connection from the pool means Postgres is down or saturated: retryable.
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        ApiError::unavailable(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_secs;
        let mut response = (self.code.http_status(), Json(self)).into_response();
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
    fn body_uses_grpc_numbers() {
        let e = ApiError::invalid_argument("bad").with_detail("field x");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": 3, "message": "bad", "details": ["field x"]})
        );
        assert_eq!(
            Code::Unauthenticated.http_status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            Code::FailedPrecondition.http_status(),
            StatusCode::BAD_REQUEST
        );
    }
}
