//! What every request passes before (and every error response after) its handler: the
//! declared body length and the size of the headers are checked before anything is read, a
//! body is read with a size cap and a deadline, text that may reach the database is checked for
//! control characters, and any error response the HTTP layer produced itself (axum's method
//! router and extractors) is given the contract's body `{"code", "message", "details"}`.
//!
//! What stays outside: hyper answers requests it cannot parse at all (a malformed request line,
//! a head beyond its buffer of [`super::serve::HYPER_MAX_BUF`] bytes or
//! [`super::serve::HYPER_MAX_HEADERS`] headers) itself, with an empty body, before any of this
//! runs. The limits here are well below hyper's, so any request hyper can parse gets the contract.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::AppState;
use super::error::ApiError;

/// Most headers a request may carry (hyper's default; hyper itself allows a few more, so a
/// request over this limit still gets a contract body).
pub const MAX_HEADERS: usize = 100;

/// Where the forges' webhook endpoints live.
pub const WEBHOOK_PATH_PREFIX: &str = "/v1/webhooks/";

/// Size limits and deadlines of one request, from `[intake]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// `intake.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `intake.max_header_bytes`: names and values of all headers together.
    pub max_header_bytes: usize,
    /// `intake.body_read_timeout_secs`: the whole body, from the end of the head.
    pub body_read_timeout: Duration,
    /// `webhooks.max_body_bytes`: the body limit of `/v1/webhooks/*` (forge payloads are
    /// larger than API requests).
    pub webhook_max_body_bytes: usize,
}

impl RequestLimits {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        let intake = &settings.intake;
        Self {
            max_body_bytes: intake.max_body_bytes,
            max_header_bytes: intake.max_header_bytes,
            body_read_timeout: Duration::from_secs(intake.body_read_timeout_secs),
            webhook_max_body_bytes: settings.webhooks.max_body_bytes,
        }
    }

    /// The limits of a request to `path`: webhook deliveries get their own body limit.
    pub fn for_path(self, path: &str) -> Self {
        if path.starts_with(WEBHOOK_PATH_PREFIX) {
            Self {
                max_body_bytes: self.webhook_max_body_bytes,
                ..self
            }
        } else {
            self
        }
    }
}

/// Refuses, before the handler runs and before a byte of the body is read, a request whose
/// headers are over the limits (431) or whose declared `Content-Length` is over the body limit
/// (413): a client announcing 10 GB gets its answer at once instead of a connection held open
/// while it sends them.
pub async fn check_limits(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = state.limits.for_path(request.uri().path());
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return closing(ApiError::http(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request has {} headers; at most {MAX_HEADERS} are accepted",
                headers.len()
            ),
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > limits.max_header_bytes {
        return closing(ApiError::http(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request headers hold {header_bytes} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        ));
    }
    if let Some(declared) = headers.get(CONTENT_LENGTH) {
        // hyper already refused a Content-Length that is not a number, or two that differ.
        let declared = declared
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
            return closing(too_large(limits.max_body_bytes));
        }
    }
    let mut response = next.run(request).await;
    // A body cut off by `read_body` (too large, too slow) leaves the rest unread: the
    // connection cannot carry another request.
    if matches!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    ) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn too_large(limit: usize) -> ApiError {
    ApiError::http(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body exceeds {limit} bytes"),
    )
}

/// The error response, telling the client (and hyper) that the connection ends here: the body
/// it meant to send is not read.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads a request body whose length was not declared (or was within the limit), stopping at
/// the size limit (413) and at the body deadline (408), so a client can neither make the intake
/// buffer more than the limit nor hold a request open by sending its body slowly.
pub async fn read_body(body: Body, limits: RequestLimits) -> Result<Bytes, ApiError> {
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| {
                ApiError::invalid_argument("the request body could not be read to its end")
            })?;
            if bytes.len() + chunk.len() > limits.max_body_bytes {
                return Err(too_large(limits.max_body_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    };
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::http(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                limits.body_read_timeout.as_secs()
            ),
        )),
    }
}

/// Refuses text from a request that would reach the database or the logs with a control
/// character in it: Postgres text cannot hold NUL (it would be a 500 after part of the work was
/// done), and the others forge log lines. `name` is the parameter as the caller wrote it.
pub fn check_text(name: &str, value: &str) -> Result<(), ApiError> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(ApiError::invalid_argument(format!(
            "{name} must not contain control characters (found U+{:04X})",
            u32::from(c)
        ))),
    }
}

/// Gives the contract's body to every error response that lacks it: axum's own 405 (with its
/// `Allow` header kept), extractor rejections (400, 413, 415, 422) and anything else answered
/// in plain text or with no body. Responses that already are JSON are passed on untouched.
pub async fn contract_errors(request: Request, next: Next) -> Response {
    let method = known_method(request.method());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's rejection texts are short; anything longer is cut rather than buffered whole.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => match method {
            Some(m) => format!("method {m} is not allowed on this path"),
            None => "this method is not allowed on this path".to_owned(),
        },
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "the request's content type is not accepted".to_owned()
        }
        _ if !text.is_empty() && text.len() <= 300 => text.clone(),
        _ => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned(),
    };
    let mut error = ApiError::http(status, message);
    if !text.is_empty() && text.len() <= 300 && error.message != text {
        error = error.with_detail(text);
    }
    let rewritten = error.into_response();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let (_, body) = rewritten.into_parts();
    Response::from_parts(parts, body)
}

/// The method's name when it is a standard one; a client-made method name is never echoed.
fn known_method(method: &Method) -> Option<&'static str> {
    Some(crate::metrics::method_label(method)).filter(|m| *m != "other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_naming_the_parameter() {
        assert!(check_text("resource_type", "assessment").is_ok());
        for bad in ["a\0b", "\r\n", "x\u{7f}", "\u{1b}[31m"] {
            let error = check_text("resource_type", bad).unwrap_err();
            assert_eq!(error.code, super::super::error::Code::InvalidArgument);
            assert!(
                error.message.starts_with("resource_type "),
                "{}",
                error.message
            );
        }
    }
}
