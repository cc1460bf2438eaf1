//! Is a delivery really from the forge? Each forge's scheme, compared in constant time:
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the
//!   secret>`;
//! - Gitea/Forgejo: `X-Gitea-Signature` (or `X-Forgejo-Signature`): the same HMAC, hex, with
//!   no prefix;
//! - GitLab: `X-Gitlab-Token` holds the secret itself (GitLab does not sign bodies).
//!
//! The signature is checked on the bytes as received, before the body is parsed.

use aws_lc_rs::{constant_time, hmac};
use axum::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use super::WebhookForge;

/// Why a delivery is refused. The text goes to the sender (401) and names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("webhooks from {0} are not configured on this server (no secret)")]
    NotConfigured(&'static str),
    #[error("the delivery carries no {0} header")]
    Unsigned(&'static str),
    #[error("the {0} header does not match the delivery")]
    BadSignature(&'static str),
}

pub fn verify(
    forge: WebhookForge,
    secret: Option<&SecretString>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refusal> {
    let secret = secret.ok_or(Refusal::NotConfigured(forge.as_str()))?;
    match forge {
        WebhookForge::Github => {
            let name = "X-Hub-Signature-256";
            let value = header(headers, &[name]).ok_or(Refusal::Unsigned(name))?;
            let hex = value
                .strip_prefix("sha256=")
                .ok_or(Refusal::BadSignature(name))?;
            check_hmac(secret, body, hex).map_err(|()| Refusal::BadSignature(name))
        }
        WebhookForge::Gitea => {
            let name = "X-Gitea-Signature";
            let value = header(headers, &["x-gitea-signature", "x-forgejo-signature"])
                .ok_or(Refusal::Unsigned(name))?;
            check_hmac(secret, body, value).map_err(|()| Refusal::BadSignature(name))
        }
        WebhookForge::Gitlab => {
            let name = "X-Gitlab-Token";
            let value = header(headers, &[name]).ok_or(Refusal::Unsigned(name))?;
            constant_time::verify_slices_are_equal(
                value.as_bytes(),
                secret.expose_secret().as_bytes(),
            )
            .map_err(|_| Refusal::BadSignature(name))
        }
    }
}

/// The first of `names` present, as trimmed text (the forges name one header differently).
pub fn header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn check_hmac(secret: &SecretString, body: &[u8], hex: &str) -> Result<(), ()> {
    let tag = decode_hex(hex).ok_or(())?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    hmac::verify(&key, body, &tag).map_err(|_| ())
}

/// The HMAC-SHA256 of `body` under `secret`, hex: what a forge sends (tests and tools).
pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    to_hex(hmac::sign(&key, body).as_ref())
}

/// `bytes` as lowercase hex: how an HMAC tag travels here (the console's CSRF tokens too).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex HMAC tag; `None` for odd lengths, non-hex digits, or text longer than
/// any tag (128 digits), so nothing large is decoded before the comparison.
pub(crate) fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || hex.len() > 128 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";

    fn secret() -> SecretString {
        SecretString::from(SECRET.to_owned())
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn github_documents_this_signature() {
        // GitHub's own example (docs: "Validating webhook deliveries").
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign_hex(SECRET, BODY), expected);
        let headers = with("x-hub-signature-256", &format!("sha256={expected}"));
        assert_eq!(
            verify(WebhookForge::Github, Some(&secret()), &headers, BODY),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_missing_or_malformed_signature_is_refused() {
        let s = secret();
        let good = sign_hex(SECRET, BODY);
        let other = sign_hex("another secret", BODY);
        for (headers, forge) in [
            (HeaderMap::new(), WebhookForge::Github),
            (with("x-hub-signature-256", &other), WebhookForge::Github),
            (
                with("x-hub-signature-256", &format!("sha256={other}")),
                WebhookForge::Github,
            ),
            (with("x-hub-signature-256", &good), WebhookForge::Github),
            (
                with("x-hub-signature-256", "sha256=zz"),
                WebhookForge::Github,
            ),
            (HeaderMap::new(), WebhookForge::Gitea),
            (with("x-gitea-signature", &other), WebhookForge::Gitea),
            (
                with("x-gitea-signature", &format!("{good}00")),
                WebhookForge::Gitea,
            ),
            (HeaderMap::new(), WebhookForge::Gitlab),
            (with("x-gitlab-token", "guess"), WebhookForge::Gitlab),
            (
                with("x-gitlab-token", &format!("{SECRET}x")),
                WebhookForge::Gitlab,
            ),
        ] {
            assert!(
                verify(forge, Some(&s), &headers, BODY).is_err(),
                "{forge:?} {headers:?}"
            );
        }
        // The body is part of the signature.
        let headers = with("x-hub-signature-256", &format!("sha256={good}"));
        assert!(verify(WebhookForge::Github, Some(&s), &headers, b"Hello, World?").is_err());
    }

    #[test]
    fn gitea_and_gitlab_accept_their_own_scheme() {
        let s = secret();
        let headers = with("x-gitea-signature", &sign_hex(SECRET, BODY));
        assert_eq!(
            verify(WebhookForge::Gitea, Some(&s), &headers, BODY),
            Ok(())
        );
        let headers = with("x-forgejo-signature", &sign_hex(SECRET, BODY));
        assert_eq!(
            verify(WebhookForge::Gitea, Some(&s), &headers, BODY),
            Ok(())
        );
        let headers = with("x-gitlab-token", SECRET);
        assert_eq!(
            verify(WebhookForge::Gitlab, Some(&s), &headers, BODY),
            Ok(())
        );
    }

    #[test]
    fn a_forge_without_a_secret_refuses_everything() {
        let headers = with("x-gitlab-token", "");
        assert_eq!(
            verify(WebhookForge::Gitlab, None, &headers, BODY),
            Err(Refusal::NotConfigured("gitlab"))
        );
    }
}
