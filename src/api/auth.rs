//! Bearer JWT authentication. The one accepted algorithm comes from config (`auth.algorithm`),
//! never from the token: HS256 with a shared secret, or RS256/ES256 with public keys from PEM
//! files (`keys`) or the identity provider's JWKS (`jwks`). `exp` and `sub` are required,
//! `nbf` is honoured, `iss`/`aud` are required and checked when configured; the organisation
//! claim scopes every query; OAuth2-style scopes gate each endpoint.

mod jwks;
mod keys;

use crate::lifecycle::OrganizationId;
use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use super::error::{ApiError, Code};
use crate::config::AuthSettings;
use jwks::{JwksSource, KeyError};
use keys::{NamedKey, algorithm_name, configured_algorithm, load_pem_files, peek_header, select};

pub const SCOPE_REMEDIATIONS_WRITE: &str = "remediations:write";
pub const SCOPE_OPERATIONS_READ: &str = "operations:read";
/// Longest accepted `sub` claim; identity providers use ids far shorter.
const MAX_SUBJECT_LEN: usize = 1024;

/// Who is calling, as the verified token says.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub organization: OrganizationId,
    scopes: HashSet<String>,
    /// The token's `exp` (seconds since the epoch): the console's session ends with it.
    pub expires_at: i64,
}

impl Caller {
    /// Whether the token carries `scope` (the console shows or hides actions by it).
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::PermissionDenied,
                format!("the token lacks the scope `{scope}` this endpoint requires"),
            ))
        }
    }
}

/// Where verification keys come from; fixed at startup by `auth.algorithm`.
enum Keys {
    /// HS256: the shared secret, whatever `kid` a token names.
    Secret(DecodingKey),
    /// RS256/ES256 from `auth.public_key_files`.
    Pem(Vec<NamedKey>),
    /// RS256/ES256 from `auth.jwks_url`.
    Jwks(JwksSource),
}

pub struct Authenticator {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
    org_claim: String,
    scope_claim: String,
}

impl Authenticator {
    /// Reads keys and checks the settings; no network access (the JWKS is fetched on first use,
    /// so an identity provider that is down does not stop the intake from starting).
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let algorithm = configured_algorithm(&settings.algorithm)?;
        let keys = keys_from(settings, algorithm)?;
        let mut validation = Validation::new(algorithm);
        // The crate checks `iss`/`aud` only when present: configured ones must be present.
        let mut required = vec!["exp", "sub"];
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        if settings.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&settings.issuer]);
            required.push("iss");
        }
        if settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&settings.audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Authenticator {
            algorithm,
            keys,
            validation,
            org_claim: settings.org_claim.clone(),
            scope_claim: settings.scope_claim.clone(),
        })
    }

    /// Verifies the bearer token: its header must name the configured algorithm, its `kid`
    /// (if any) a known key, its signature verify, and its claims pass (`exp` required, `nbf`,
    /// `iss`/`aud` when configured). May fetch the JWKS.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        self.authenticate_token(bearer_token(headers)?).await
    }

    /// Verifies a bearer token given as it is (the console's session cookie holds one).
    pub async fn authenticate_token(&self, token: &str) -> Result<Caller, ApiError> {
        let header = peek_header(token).map_err(ApiError::unauthenticated)?;
        let expected = algorithm_name(self.algorithm);
        if header.alg != expected {
            return Err(ApiError::unauthenticated(format!(
                "the token's algorithm {} is not accepted; this service accepts only {expected}",
                printable(&header.alg)
            )));
        }
        let kid = header.kid.as_deref();
        let claims = match &self.keys {
            Keys::Secret(key) => self.verify(token, &[key])?,
            Keys::Pem(keys) => {
                let candidates = select(keys, kid);
                if candidates.is_empty() {
                    return Err(ApiError::unauthenticated(
                        "the token is invalid: no configured key has its key id (`kid`)",
                    ));
                }
                self.verify(token, &candidates)?
            }
            Keys::Jwks(source) => {
                let keys = source.keys_for(kid).await.map_err(|e| match e {
                    KeyError::NeverFetched => ApiError::new(
                        Code::Unavailable,
                        "cannot verify the token now: the identity provider's signing keys \
                         (JWKS) could not be fetched yet; retry later",
                    ),
                    KeyError::UnknownKid {
                        refresh_failed: true,
                    } => ApiError::unauthenticated(
                        "cannot verify the token now: its key id (`kid`) is not among the \
                         cached signing keys and the JWKS could not be fetched again",
                    ),
                    KeyError::UnknownKid {
                        refresh_failed: false,
                    } => ApiError::unauthenticated(
                        "the token is invalid: the identity provider's JWKS has no key with its \
                         key id (`kid`)",
                    ),
                })?;
                self.verify(token, &select(&keys, kid))?
            }
        };
        self.caller(claims)
    }

    /// Tries each candidate key; a signature that does not match one moves on to the next,
    /// any other failure (expired, wrong issuer, ...) is the answer, as the signature held.
    fn verify(&self, token: &str, keys: &[&DecodingKey]) -> Result<Map<String, Value>, ApiError> {
        for key in keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(ApiError::unauthenticated(describe_jwt_error(&e, token))),
            }
        }
        Err(ApiError::unauthenticated(
            "the token is invalid: its signature does not match a configured key",
        ))
    }

    fn caller(&self, claims: Map<String, Value>) -> Result<Caller, ApiError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // The subject is written into operation history ("cancelled by ..."): Postgres text
        // cannot hold NUL, and other control characters would forge lines in logs and in the
        // history a person reads, so such a token is refused before anything is written.
        if subject.chars().any(char::is_control) {
            return Err(ApiError::unauthenticated(
                "the token's `sub` claim must not contain control characters",
            ));
        }
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(ApiError::unauthenticated(format!(
                "the token's `sub` claim must be at most {MAX_SUBJECT_LEN} bytes"
            )));
        }
        let organization = claims
            .get(&self.org_claim)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<OrganizationId>().ok())
            .ok_or_else(|| {
                ApiError::unauthenticated(format!(
                    "the token's `{}` claim must hold an organisation id (UUID)",
                    self.org_claim
                ))
            })?;
        let scopes = match claims.get(&self.scope_claim) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => HashSet::new(),
        };
        // Verification required `exp`; a float is truncated like the crate reads it.
        let expires_at = claims
            .get("exp")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .unwrap_or_default();
        Ok(Caller {
            subject,
            organization,
            scopes,
            expires_at,
        })
    }
}

fn keys_from(settings: &AuthSettings, algorithm: Algorithm) -> anyhow::Result<Keys> {
    let jwks_url = settings.jwks_url.trim();
    if algorithm == Algorithm::HS256 {
        if !settings.public_key_files.is_empty() || !jwks_url.is_empty() {
            bail!(
                "auth.public_key_files and auth.jwks_url are for RS256/ES256, but auth.algorithm \
                 is HS256; set auth.algorithm or remove them"
            );
        }
        let Some(secret) = &settings.jwt_secret else {
            bail!(
                "no JWT secret configured: set REMEDIATOR__AUTH__JWT_SECRET or auth.jwt_secret_file"
            );
        };
        let key = DecodingKey::from_secret(secret.expose_secret().as_bytes())
            .context("the JWT secret is not usable (empty?)")?;
        return Ok(Keys::Secret(key));
    }
    let name = algorithm_name(algorithm);
    if settings.jwt_secret.is_some() {
        tracing::warn!(
            algorithm = %name,
            "a JWT secret is configured but unused: {name} tokens are verified with public keys"
        );
    }
    match (settings.public_key_files.is_empty(), jwks_url.is_empty()) {
        (false, false) => bail!("set one of auth.public_key_files or auth.jwks_url, not both"),
        (true, true) => bail!(
            "auth.algorithm is {name}: set auth.public_key_files (PEM public keys) or \
             auth.jwks_url (the identity provider's JWKS)"
        ),
        (false, true) => Ok(Keys::Pem(load_pem_files(
            &settings.public_key_files,
            algorithm,
        )?)),
        (true, false) => Ok(Keys::Jwks(JwksSource::new(
            jwks_url,
            algorithm,
            Duration::from_secs(settings.jwks_min_refresh_secs),
            Duration::from_secs(settings.jwks_max_age_secs),
        )?)),
    }
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let header = values
        .next()
        .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
    // Two credentials are ambiguous: a proxy may check one and we would use the other.
    if values.next().is_some() {
        return Err(ApiError::unauthenticated(
            "the request has more than one Authorization header; send exactly one",
        ));
    }
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
        })
}

/// A header value from the token, quoted for an error message only when short and plain.
fn printable(value: &str) -> String {
    if value.len() <= 16 && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        format!("`{value}`")
    } else {
        "(unrecognised)".to_owned()
    }
}

/// What a failed verification tells the caller. `token` is only looked into for a claim the
/// crate reports missing or unreadable, which happens after the signature verified: the crate
/// says "missing" (or gives a bare JSON error) for a present claim of the wrong type, and the
/// caller should learn which claim it was and what type it must have.
fn describe_jwt_error(error: &jsonwebtoken::errors::Error, token: &str) -> String {
    if matches!(
        error.kind(),
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_)
    ) && let Some(message) = wrong_typed_claim(token)
    {
        return message;
    }
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "the token's audience is not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the token lacks the required claim `{claim}`")
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("the token is invalid: its `{claim}` claim is malformed")
        }
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted".into(),
        _ => "the token is invalid".into(),
    }
}

/// The first registered claim of the (already verified) payload that is present with the
/// wrong type, described; `None` when they all have their types (or are absent).
fn wrong_typed_claim(token: &str) -> Option<String> {
    let claims =
        jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token).ok()?;
    let number = "a number (seconds since the epoch)";
    [
        ("exp", number, Value::is_number as fn(&Value) -> bool),
        ("nbf", number, Value::is_number),
        ("iat", number, Value::is_number),
        ("sub", "a string", Value::is_string),
        ("iss", "a string", Value::is_string),
        ("aud", "a string or an array of strings", |v: &Value| {
            v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        }),
    ]
    .into_iter()
    .find_map(|(claim, expected, fits)| match claims.get(claim) {
        Some(value) if !value.is_null() && !fits(value) => Some(format!(
            "the token is invalid: its `{claim}` claim must be {expected}"
        )),
        _ => None,
    })
}

/// Mints a token signed with the configured secret (`remediator token`, demos and tests).
/// HS256 only: with RS256/ES256 the private key lives with the identity provider.
pub fn mint_token(
    settings: &AuthSettings,
    organization: OrganizationId,
    subject: &str,
    scopes: &[String],
    ttl: std::time::Duration,
) -> anyhow::Result<String> {
    let algorithm = configured_algorithm(&settings.algorithm)?;
    if algorithm != Algorithm::HS256 {
        bail!(
            "`remediator token` mints HS256 tokens only, and auth.algorithm is {}: tokens are \
             signed by the identity provider that holds the private key; ask it for one",
            algorithm_name(algorithm)
        );
    }
    let Some(secret) = &settings.jwt_secret else {
        bail!("no JWT secret configured: set REMEDIATOR__AUTH__JWT_SECRET or auth.jwt_secret_file");
    };
    let now = chrono::Utc::now().timestamp();
    let mut claims = Map::new();
    claims.insert("sub".into(), subject.into());
    claims.insert("iat".into(), now.into());
    claims.insert(
        "exp".into(),
        (now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)).into(),
    );
    claims.insert(settings.org_claim.clone(), organization.to_string().into());
    claims.insert(settings.scope_claim.clone(), scopes.join(" ").into());
    if !settings.issuer.is_empty() {
        claims.insert("iss".into(), settings.issuer.clone().into());
    }
    if !settings.audience.is_empty() {
        claims.insert("aud".into(), settings.audience.clone().into());
    }
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes())
            .context("the JWT secret is not usable (empty?)")?,
    )
    .context("signing the token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::path::{Path, PathBuf};

    fn settings() -> AuthSettings {
        crate::config::Settings::defaults().unwrap().auth
    }

    /// Runs the `openssl` CLI, which must succeed; returns what it wrote to stdout.
    pub(super) fn openssl(args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Writes a public key made by the `openssl` CLI; returns its path.
    fn public_key(dir: &Path, name: &str, genpkey: &[&str]) -> PathBuf {
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pem"));
        let mut args = vec!["genpkey", "-out", private.to_str().unwrap()];
        args.extend_from_slice(genpkey);
        openssl(&args);
        openssl(&[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        public
    }

    fn error(settings: &AuthSettings) -> String {
        match Authenticator::new(settings) {
            Ok(_) => panic!("settings were accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn key_sources_must_fit_the_algorithm() {
        let mut s = settings();
        s.jwt_secret = Some(SecretString::from("a-secret".to_owned()));
        s.jwks_url = "https://idp.example/jwks.json".into();
        assert!(error(&s).contains("are for RS256/ES256"));

        s.algorithm = "RS256".into();
        s.jwks_url.clear();
        let e = error(&s);
        assert!(
            e.contains("public_key_files") && e.contains("jwks_url"),
            "{e}"
        );

        s.public_key_files = vec!["/nonexistent/k.pem".into()];
        s.jwks_url = "https://idp.example/jwks.json".into();
        assert!(error(&s).contains("not both"));

        s.public_key_files.clear();
        s.jwks_url = "http://idp.example/jwks.json".into();
        assert!(error(&s).contains("https"));
        s.jwks_url = "http://127.0.0.1:9/jwks.json".into();
        assert!(
            Authenticator::new(&s).is_ok(),
            "loopback http is for local use"
        );
        s.jwks_url = "https://user:pw@idp.example/jwks.json".into();
        assert!(error(&s).contains("credentials"));

        s.algorithm = "none".into();
        assert!(error(&s).contains("not supported"));
    }

    #[test]
    fn pem_files_are_checked_at_startup_and_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let rsa_args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        let rsa = public_key(dir.path(), "rsa", &rsa_args);
        let ec = public_key(
            dir.path(),
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        let p384 = public_key(
            dir.path(),
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        );
        let weak = public_key(
            dir.path(),
            "weak",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        );

        let mut s = settings();
        s.algorithm = "RS256".into();
        s.public_key_files = vec![rsa.clone()];
        assert!(Authenticator::new(&s).is_ok());
        s.public_key_files = vec![ec.clone()];
        let e = error(&s);
        assert!(
            e.contains("ec.pem") && e.contains("not an RSA public key"),
            "{e}"
        );
        s.public_key_files = vec![weak];
        assert!(error(&s).contains("at least 2048"));
        s.public_key_files = vec![dir.path().join("rsa.key")];
        assert!(error(&s).contains("private key"));

        s.algorithm = "ES256".into();
        s.public_key_files = vec![ec];
        assert!(Authenticator::new(&s).is_ok());
        s.public_key_files = vec![p384];
        assert!(error(&s).contains("P-256"));
        s.public_key_files = vec![rsa];
        assert!(error(&s).contains("not an EC public key"));
    }

    #[tokio::test]
    async fn an_hs256_token_verifies_and_its_scopes_gate_endpoints() {
        let mut s = settings();
        s.jwt_secret = Some(SecretString::from("test-secret-0123456789".to_owned()));
        let auth = Authenticator::new(&s).unwrap();
        let org = OrganizationId::new_random();
        let token = mint_token(
            &s,
            org,
            "me",
            &["operations:read".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        let caller = auth.authenticate(&headers).await.unwrap();
        assert_eq!(caller.organization, org);
        assert!(caller.require(SCOPE_OPERATIONS_READ).is_ok());
        assert_eq!(
            caller.require(SCOPE_REMEDIATIONS_WRITE).unwrap_err().code,
            Code::PermissionDenied
        );
    }
}
