//! CSRF tokens. A session's token is an HMAC-SHA256 of a fixed label keyed with the session's
//! bearer token: only someone who holds the (HttpOnly) cookie can compute it, it needs no
//! server-side state or shared key across intake replicas, and it changes with the session.
//! The login form, which has no session yet, uses a double-submit nonce: a random value in a
//! short-lived `SameSite=Strict` cookie that the form must repeat. Every POST is also refused
//! when the browser says it comes from another site (`Origin`, `Sec-Fetch-Site`).

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

use super::ConsoleError;
use crate::webhooks::verify::{decode_hex, to_hex};

const LABEL: &[u8] = b"remediator console csrf v1";
/// The login form's nonce cookie.
pub const LOGIN_COOKIE: &str = "remediator_console_login";

/// The CSRF token of the session whose bearer token is `session_token`, as hex.
pub fn token_for(session_token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_token.as_bytes());
    to_hex(hmac::sign(&key, LABEL).as_ref())
}

/// Whether `submitted` is the session's token (compared in constant time by the HMAC crate).
pub fn verify(session_token: &str, submitted: &str) -> bool {
    let Some(tag) = decode_hex(submitted) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_token.as_bytes());
    hmac::verify(&key, LABEL, &tag).is_ok()
}

/// A fresh random nonce (32 bytes, hex) for the login form.
pub fn nonce() -> Result<String, ConsoleError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ConsoleError::internal("csrf nonce", "the system random source failed"))?;
    Ok(to_hex(&bytes))
}

/// Whether the login form's nonce matches its cookie, in constant time.
pub fn nonce_matches(cookie: Option<&str>, submitted: Option<&str>) -> bool {
    match (cookie, submitted) {
        (Some(a), Some(b)) if a.len() == 64 && a.len() == b.len() => {
            a.bytes()
                .zip(b.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
        }
        _ => false,
    }
}

/// Refuses a POST the browser marks as cross-site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` whose host is not the request's `Host`. A request with neither (curl, an old
/// browser) is left to the CSRF token.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let refused =
        || ConsoleError::Forbidden("cross-site requests are refused by the console".to_owned());
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site")
    {
        return Err(refused());
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().map_err(|_| refused())?;
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        if origin == "null" || origin_host.is_none() || origin_host != host {
            return Err(refused());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_session() {
        let token = token_for("header.payload.signature");
        assert_eq!(token.len(), 64);
        assert!(verify("header.payload.signature", &token));
        assert!(!verify("header.payload.other", &token));
        assert!(!verify("header.payload.signature", ""));
        assert!(!verify("header.payload.signature", &token[..62]));
        assert!(!verify("header.payload.signature", "zz"));
    }

    #[test]
    fn nonces_are_random_and_match_only_themselves() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_ne!(a, b);
        assert!(nonce_matches(Some(&a), Some(&a)));
        assert!(!nonce_matches(Some(&a), Some(&b)));
        assert!(!nonce_matches(None, Some(&a)));
        assert!(!nonce_matches(Some("short"), Some("short")));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(ORIGIN, "https://evil.example".parse().unwrap());
        assert!(check_same_origin(&headers).is_err());
        headers.insert(ORIGIN, "null".parse().unwrap());
        assert!(check_same_origin(&headers).is_err());
        headers.remove(ORIGIN);
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(check_same_origin(&headers).is_err());
    }
}
