//! Form bodies (`application/x-www-form-urlencoded`) as the console's POSTs send them, read
//! with the intake's body limit and deadline, after the checks every POST passes first (same
//! origin; for an action, the admin session and its CSRF token). Keys may repeat: a selection
//! of dead letters is one `id` per checked box.

use axum::body::Body;
use axum::http::HeaderMap;

use super::session::{self, Session};
use super::{ConsoleError, ConsoleState, csrf};
use crate::api::guard::{RequestLimits, read_body};

/// The form of a POST sent from the console's own pages (login, logout).
pub async fn read_posted(
    state: &ConsoleState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Form, ConsoleError> {
    csrf::check_same_origin(headers)?;
    Form::read(body, state.app.limits).await
}

/// The admin session behind an action (cancel, replay, purge), with its form: same origin, a
/// live session, its CSRF token, the admin scope.
pub async fn admin_action(
    state: &ConsoleState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Session, Form), ConsoleError> {
    csrf::check_same_origin(headers)?;
    let session = session::require(state, headers, false).await?;
    let form = Form::read(body, state.app.limits).await?;
    session.check_csrf(form.get("csrf"))?;
    session.require_admin(&state.admin_scope)?;
    Ok((session, form))
}

pub struct Form(Vec<(String, String)>);

impl Form {
    pub async fn read(body: Body, limits: RequestLimits) -> Result<Form, ConsoleError> {
        let bytes = read_body(body, limits).await.map_err(ConsoleError::from)?;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        // Text from a form may reach the database or the logs: no control characters.
        for (key, value) in &pairs {
            crate::api::guard::check_text("a form field", key).map_err(ConsoleError::from)?;
            crate::api::guard::check_text(key, value).map_err(ConsoleError::from)?;
        }
        Ok(Form(pairs))
    }

    /// The first value of `key`, trimmed; `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        let (_, value) = self.0.iter().find(|(k, _)| k == key)?;
        Some(value.trim()).filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `key`, trimmed.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}
