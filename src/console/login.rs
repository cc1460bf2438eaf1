//! Logging in (a bearer token pasted into a form, verified as the API verifies it, kept in the
//! session cookie) and out (the cookie cleared). Both are recorded in the audit table.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use maud::html;

use super::form;
use super::session::{self, Session};
use super::{ConsoleError, ConsoleState, audit, csrf, html, layout, see_other};
use crate::db::audit::AuditAction;

pub async fn form(State(state): State<ConsoleState>) -> Result<Response, ConsoleError> {
    login_page(&state, StatusCode::OK, None)
}

fn login_page(
    state: &ConsoleState,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, ConsoleError> {
    let nonce = csrf::nonce()?;
    let markup = layout::bare(
        "Log in",
        html! {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            p {
                "Paste a bearer token (the same JWT the API takes). With "
                code { "operations:read" } " you see your organisation's operations; with "
                code { (state.admin_scope) } " every organisation, and you may cancel, replay and purge."
            }
            form method="post" action="/console/login" {
                input type="hidden" name="login_csrf" value=(nonce);
                p {
                    label for="token" { "Token" }
                    br;
                    textarea id="token" name="token" rows="6" cols="60" autocomplete="off"
                        spellcheck="false" required {}
                }
                button.primary type="submit" { "Log in" }
            }
        },
    );
    let mut response = html(status, markup);
    // The nonce cookie lives ten minutes: long enough to paste a token.
    set_login_nonce(&mut response, &nonce, 600, state.secure_cookie);
    Ok(response)
}

pub async fn submit(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let form = form::read_posted(&state, &headers, body).await?;
    if !csrf::nonce_matches(
        session::cookie(&headers, csrf::LOGIN_COOKIE),
        form.get("login_csrf"),
    ) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("the login form expired or was not sent from this console; try again"),
        );
    }
    let Some(token) = form.get("token") else {
        return login_page(&state, StatusCode::BAD_REQUEST, Some("paste a token"));
    };
    let session = match session::verify(&state, token).await {
        Ok(session) => session,
        Err(ConsoleError::Unauthenticated { .. }) => {
            return login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                Some("the token was refused (invalid, expired, or not signed by a configured key)"),
            );
        }
        Err(ConsoleError::Forbidden(message)) => {
            return login_page(&state, StatusCode::FORBIDDEN, Some(&message));
        }
        Err(other) => return Err(other),
    };
    record(&state, &session, AuditAction::Login).await?;
    let mut response = see_other("/console/");
    let cookie = session::set_cookie(token, session.caller.expires_at, state.secure_cookie);
    let value = HeaderValue::from_str(&cookie).map_err(|_| {
        ConsoleError::BadRequest("the token holds characters a cookie cannot".into())
    })?;
    response.headers_mut().append(SET_COOKIE, value);
    // The login nonce has done its job.
    set_login_nonce(&mut response, "", 0, state.secure_cookie);
    Ok(response)
}

/// Sets the login form's nonce cookie (an empty value with no age clears it).
fn set_login_nonce(response: &mut Response, nonce: &str, max_age_secs: u32, secure: bool) {
    let cookie = format!(
        "{}={nonce}; Path={}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        csrf::LOGIN_COOKIE,
        session::COOKIE_PATH,
        if secure { "; Secure" } else { "" }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

pub async fn logout(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let form = form::read_posted(&state, &headers, body).await?;
    // An expired session may always log out (the cookie is cleared either way); a live one
    // must carry its CSRF token, so another site cannot log an operator out.
    if let Ok(session) = session::require(&state, &headers, false).await {
        session.check_csrf(form.get("csrf"))?;
        record(&state, &session, AuditAction::Logout).await?;
    }
    let mut response = see_other("/console/login");
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(state.secure_cookie)) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    Ok(response)
}

/// A login or logout, in the audit trail, with the role the session had.
async fn record(
    state: &ConsoleState,
    session: &Session,
    action: AuditAction,
) -> Result<(), ConsoleError> {
    let role = if session.admin { "admin" } else { "read-only" };
    audit::record(state, session, action, "console", role, None).await
}
