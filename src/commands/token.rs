//! `remediator token`: prints a bearer token signed with the configured secret, for local use
//! and demos.

use crate::lifecycle::OrganizationId;
use std::time::Duration;

use crate::api::auth::{SCOPE_OPERATIONS_READ, SCOPE_REMEDIATIONS_WRITE, mint_token};
use crate::config::Settings;

pub fn default_scopes() -> Vec<String> {
    vec![
        SCOPE_REMEDIATIONS_WRITE.to_owned(),
        SCOPE_OPERATIONS_READ.to_owned(),
    ]
}

pub fn run(
    settings: &Settings,
    organization: OrganizationId,
    subject: &str,
    scopes: Option<Vec<String>>,
    ttl: Duration,
) -> anyhow::Result<String> {
    mint_token(
        &settings.auth,
        organization,
        subject,
        &scopes.unwrap_or_else(default_scopes),
        ttl,
    )
}
