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
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unknown | Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }

    /// The code for an error status the HTTP layer produced itself (axum's extractors and
    /// method router, hyper-level limits), as grpc-gateway's routing errors and HTTP mapping
    /// read it backwards.
    pub fn for_http_status(status: StatusCode) -> Code {
        match status.as_u16() {
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            405 | 501 => Code::Unimplemented,
            408 | 504 => Code::DeadlineExceeded,
            409 => Code::AlreadyExists,
            413 | 429 | 431 => Code::ResourceExhausted,
            503 => Code::Unavailable,
            500 => Code::Internal,
            400..=499 => Code::InvalidArgument,
            _ => Code::Unknown,
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
    /// The HTTP status when it is not the code's grpc-gateway mapping: the HTTP layer's own
    /// refusals (405, 408, 413, 431) keep the status HTTP clients and proxies expect.
    #[serde(skip)]
    pub http_status: Option<StatusCode>,
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
            http_status: None,
        }
    }

    /// An error of the HTTP layer: its status, with the code [`Code::for_http_status`] gives.
    pub fn http(status: StatusCode, message: impl Into<String>) -> Self {
        let mut error = Self::new(Code::for_http_status(status), message);
        error.http_status = Some(status);
        error
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
            // UnableToSendCommand: the driver's own failure (no SQLSTATE), a connection lost.
            Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ClosedConnection
                | diesel::result::DatabaseErrorKind::UnableToSendCommand,
                _,
            )
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
        let status = self.http_status.unwrap_or(self.code.http_status());
        let mut response = (status, Json(self)).into_response();
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
