//! Bearer JWT authentication. The accepted algorithm comes from config, never from the token;
//! `exp` and `sub` are required; the organisation claim scopes every query; OAuth2-style
//! scopes gate each endpoint.

use std::collections::HashSet;

use anyhow::{Context, bail};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{ApiError, Code};
use crate::config::AuthSettings;

pub const SCOPE_REMEDIATIONS_WRITE: &str = "remediations:write";
pub const SCOPE_OPERATIONS_READ: &str = "operations:read";

/// Who is calling, as the verified token says.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub organization: Uuid,
    scopes: HashSet<String>,
}

impl Caller {
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

pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    org_claim: String,
    scope_claim: String,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let algorithm = algorithm(settings)?;
        let Some(secret) = &settings.jwt_secret else {
            bail!(
                "no JWT secret configured: set REMEDIATOR__AUTH__JWT_SECRET or auth.jwt_secret_file"
            );
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        if settings.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&settings.issuer]);
        }
        if settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&settings.audience]);
        }
        let key = DecodingKey::from_secret(secret.expose_secret().as_bytes())
            .context("the JWT secret is not usable (empty?)")?;
        Ok(Authenticator {
            key,
            validation,
            org_claim: settings.org_claim.clone(),
            scope_claim: settings.scope_claim.clone(),
        })
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let header = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
        let token = header
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
            })?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| ApiError::unauthenticated(describe_jwt_error(&e)))?;
        let claims = data.claims;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let organization = claims
            .get(&self.org_claim)
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
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
        Ok(Caller {
            subject,
            organization,
            scopes,
        })
    }
}

fn algorithm(settings: &AuthSettings) -> anyhow::Result<Algorithm> {
    match settings.algorithm.as_str() {
        "HS256" => Ok(Algorithm::HS256),
        other => bail!("auth.algorithm `{other}` is not supported; use HS256"),
    }
}

fn describe_jwt_error(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
        ErrorKind::InvalidAudience => "the token's audience is not accepted",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, sub)",
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
        _ => "the token is invalid",
    }
}

/// Mints a token signed with the configured secret (`remediator token`, demos and tests).
pub fn mint_token(
    settings: &AuthSettings,
    organization: Uuid,
    subject: &str,
    scopes: &[String],
    ttl: std::time::Duration,
) -> anyhow::Result<String> {
    let algorithm = algorithm(settings)?;
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
