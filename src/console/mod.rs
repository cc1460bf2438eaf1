//! The operations console (`/console/`), served by `remediator intake` on its own address:
//! server-rendered HTML (maud) that reads completely with JavaScript off, plus one small
//! hand-written script (`static/console.js`) that refreshes the live parts of a page by
//! fetching their fragment.
//!
//! Who sees what is decided here, once per request, from the session ([`session`]): a token
//! with `operations:read` reads its own organisation; the admin scope (`console.admin_scope`)
//! reads every organisation and may cancel, replay and purge. Every POST carries a CSRF token
//! ([`csrf`]) and is recorded in the audit table. The pages are one file per area.

pub mod assets;
pub mod audit;
pub mod broker;
pub mod csrf;
pub mod dead_letters;
pub mod form;
pub mod layout;
pub mod login;
pub mod operations;
pub mod overview;
pub mod repositories;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::AppState;
use crate::api::error::{ApiError, Code};
use crate::config::{ConsoleSettings, SecureCookie};
use crate::db::console::Scope;

/// Everything a console handler reads: the API's state (pool, authenticator, rate limit:
/// the cancel is the API's own code) and the console's.
#[derive(Clone)]
pub struct ConsoleState {
    pub app: AppState,
    pub broker: Arc<broker::Broker>,
    pub admin_scope: Arc<str>,
    /// Whether the session cookie carries `Secure`.
    pub secure_cookie: bool,
    pub refresh_ms: u64,
    pub max_replay_per_request: usize,
    /// `worker.max_open_prs_per_repository`, shown against each repository's open PRs.
    pub pr_cap: u32,
}

impl ConsoleState {
    /// `loopback`: the intake listens on a loopback address, where a browser reaches it over
    /// plain HTTP, so a `Secure` cookie would never be sent back (unless configured `always`).
    pub fn new(
        app: AppState,
        broker: Arc<broker::Broker>,
        settings: &ConsoleSettings,
        loopback: bool,
        pr_cap: u32,
    ) -> Self {
        ConsoleState {
            app,
            broker,
            admin_scope: Arc::from(settings.admin_scope.as_str()),
            secure_cookie: settings.secure_cookie == SecureCookie::Always || !loopback,
            refresh_ms: settings.refresh_ms.max(250),
            max_replay_per_request: settings.max_replay_per_request.max(1),
            pr_cap,
        }
    }
}

/// The console's routes, with its own error pages and response headers; mounted beside the
/// API by [`crate::api::router`] (outside the API's JSON error layer).
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(|| async { see_other("/console/") }))
        .route("/console/", get(overview::page))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route("/console/operations", get(operations::list))
        .route("/console/operations/{id}", get(operations::show))
        .route("/console/operations/{id}/cancel", post(operations::cancel))
        .route("/console/dead-letters", get(dead_letters::list))
        .route("/console/dead-letters/replay", post(dead_letters::replay))
        .route("/console/dead-letters/purge", post(dead_letters::purge))
        .route("/console/dead-letters/{id}", get(dead_letters::show))
        .route("/console/repositories", get(repositories::page))
        .route("/console/audit", get(audit::page))
        .route("/console/static/{file}", get(assets::serve))
        // Not a fallback: the API's answers every path outside /console.
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("no such page".into())
}

/// Headers on every console response: a strict CSP (scripts and styles from this origin only,
/// so even an escaping bug could not run injected script), no framing, no referrer to other
/// sites (URLs carry filters; `same-origin` rather than `no-referrer`, under which browsers send
/// `Origin: null` on the console's own forms), and no caching (pages show live state and who
/// is logged in).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A 303 to `location` (after a POST, or to the login page).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// An HTML response.
pub fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// Whether the request asks for a page's live fragment (the refresh script's fetch), not the
/// whole page.
fn wants_fragment(query: &std::collections::HashMap<String, String>) -> bool {
    query.get("fragment").is_some_and(|v| v == "1")
}

/// The session behind a page with a live part, and whether the request asks for just that
/// part (the refresh script's fetch, which gets a 401 rather than the login page when the
/// session has ended).
pub async fn live_page_session(
    state: &ConsoleState,
    headers: &axum::http::HeaderMap,
    query: &std::collections::HashMap<String, String>,
) -> Result<(session::Session, bool), ConsoleError> {
    let fragment = wants_fragment(query);
    let session = session::require(state, headers, fragment).await?;
    Ok((session, fragment))
}

/// The scope of a session's reads.
pub fn scope_of(session: &session::Session) -> Scope {
    if session.admin {
        Scope::All
    } else {
        Scope::Organization(session.caller.organization)
    }
}

/// How a console request fails: an HTML page with the status (or, for the login page's
/// sake, a redirect), never the API's JSON body.
#[derive(Debug)]
pub enum ConsoleError {
    /// No session, or it expired: GETs go to the login page, fragments get 401.
    Unauthenticated {
        fragment: bool,
    },
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    Conflict(String),
    TooManyRequests(String),
    Unavailable(String),
    /// A refusal of the HTTP layer that keeps its own status (413 body too large, 408 too slow).
    Http(StatusCode, String),
    /// Logged where it is made; the page says only that something failed.
    Internal,
}

impl ConsoleError {
    /// Logs the cause once, here, and answers with a generic page.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "console: {context}");
        ConsoleError::Internal
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        if let Some(status) = error.http_status {
            return ConsoleError::Http(status, error.message);
        }
        match error.code {
            Code::Unauthenticated => ConsoleError::Unauthenticated { fragment: false },
            Code::PermissionDenied => ConsoleError::Forbidden(error.message),
            Code::NotFound => ConsoleError::NotFound(error.message),
            Code::InvalidArgument | Code::FailedPrecondition => {
                ConsoleError::BadRequest(error.message)
            }
            Code::ResourceExhausted => ConsoleError::TooManyRequests(error.message),
            Code::Unavailable => ConsoleError::Unavailable(error.message),
            // ApiError logged its cause when it was made from one.
            _ => ConsoleError::Internal,
        }
    }
}

impl From<diesel::result::Error> for ConsoleError {
    fn from(error: diesel::result::Error) -> Self {
        ConsoleError::internal("database query", error)
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ConsoleError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        tracing::warn!(%error, "console: no database connection");
        ConsoleError::Unavailable("the database is unavailable; retry shortly".into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            ConsoleError::Unauthenticated { fragment: false } => {
                return see_other("/console/login");
            }
            ConsoleError::Unauthenticated { fragment: true } => (
                StatusCode::UNAUTHORIZED,
                "Logged out",
                "your session has ended; log in again".to_owned(),
            ),
            ConsoleError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            ConsoleError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            ConsoleError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Refused", m),
            ConsoleError::Conflict(m) => (StatusCode::CONFLICT, "Not done", m),
            ConsoleError::TooManyRequests(m) => (StatusCode::TOO_MANY_REQUESTS, "Slow down", m),
            ConsoleError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", m),
            ConsoleError::Http(status, m) => (status, "Refused", m),
            ConsoleError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something failed",
                "the console could not answer; the intake's log says why".to_owned(),
            ),
        };
        html(status, layout::error_page(title, &message))
    }
}
