//! The console's session: the bearer token itself, kept in an `HttpOnly`, `SameSite=Strict`
//! cookie that expires with the token (and `Secure` unless the intake is on loopback). Every
//! request verifies it again with the API's own authenticator, so a session is exactly as
//! good as its token: the same algorithm, keys, `exp`, issuer and audience rules, and nothing
//! to revoke or share between intake replicas. The token is never rendered into a page.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use secrecy::{ExposeSecret, SecretString};

use super::{ConsoleError, ConsoleState, csrf};
use crate::api::auth::{Caller, SCOPE_OPERATIONS_READ};

/// The session cookie's name; the path keeps it off the API's routes.
pub const SESSION_COOKIE: &str = "remediator_console";
pub const COOKIE_PATH: &str = "/console";
/// Longest cookie value read: a JWT far larger than any identity provider issues is refused
/// before it is verified.
const MAX_TOKEN_BYTES: usize = 8192;

/// A verified session.
pub struct Session {
    pub caller: Caller,
    /// Sees every organisation and may cancel, replay and purge.
    pub admin: bool,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    token: SecretString,
}

impl Session {
    /// Refuses a state-changing request whose form does not carry this session's CSRF token.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), ConsoleError> {
        if csrf::verify(self.token.expose_secret(), submitted.unwrap_or_default()) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "the form's CSRF token is missing or does not match this session; reload the \
                 page and try again"
                    .into(),
            ))
        }
    }

    /// Refuses a session without the admin scope.
    pub fn require_admin(&self, admin_scope: &str) -> Result<(), ConsoleError> {
        if self.admin {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(format!(
                "this action needs the scope `{admin_scope}`"
            )))
        }
    }
}

/// The session of a request; `fragment` says how to answer when there is none (401 for the
/// refresh script, a redirect to the login page otherwise).
pub async fn require(
    state: &ConsoleState,
    headers: &HeaderMap,
    fragment: bool,
) -> Result<Session, ConsoleError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(ConsoleError::Unauthenticated { fragment });
    };
    verify(state, token).await.map_err(|error| match error {
        ConsoleError::Unauthenticated { .. } => ConsoleError::Unauthenticated { fragment },
        other => other,
    })
}

/// Verifies a token as the API does and checks it may use the console at all.
pub async fn verify(state: &ConsoleState, token: &str) -> Result<Session, ConsoleError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ConsoleError::Unauthenticated { fragment: false });
    }
    let caller = state
        .app
        .auth
        .authenticate_token(token)
        .await
        .map_err(ConsoleError::from)?;
    let admin = caller.has(&state.admin_scope);
    if !admin && !caller.has(SCOPE_OPERATIONS_READ) {
        return Err(ConsoleError::Forbidden(format!(
            "the token needs the scope `{SCOPE_OPERATIONS_READ}` (or `{}`) to use the console",
            state.admin_scope
        )));
    }
    Ok(Session {
        csrf: csrf::token_for(token),
        caller,
        admin,
        token: SecretString::from(token.to_owned()),
    })
}

/// The `Set-Cookie` value that starts a session, expiring with the token.
pub fn set_cookie(token: &str, expires_at: i64, secure: bool) -> String {
    let max_age = (expires_at - chrono::Utc::now().timestamp()).max(0);
    format!(
        "{SESSION_COOKIE}={token}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; \
         SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A cookie's value from the request's `Cookie` headers (the first of that name).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others_and_carry_their_attributes() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            "a=1; remediator_console=tok.en.sig".parse().unwrap(),
        );
        headers.append(COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok.en.sig"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);

        let now = chrono::Utc::now().timestamp();
        let set = set_cookie("t", now + 600, false);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            set.contains("Max-Age=60") && !set.contains("Secure"),
            "{set}"
        );
        assert!(set_cookie("t", now + 600, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
