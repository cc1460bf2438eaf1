//! The console's audit trail (`console_audit`): every action an operator took in the console
//! (log in, log out, cancel, replay, purge), who took it, when, on what, and what came of it.
//! Rows are only inserted, never changed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::console_audit;
use crate::lifecycle::OrganizationId;

/// The actions the table's CHECK constraint allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Login,
    Logout,
    Cancel,
    Replay,
    Purge,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::Logout => "logout",
            AuditAction::Cancel => "cancel",
            AuditAction::Replay => "replay",
            AuditAction::Purge => "purge",
        }
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub actor: &'a str,
    pub actor_organization: OrganizationId,
    pub action: AuditAction,
    pub target: &'a str,
    pub outcome: &'a str,
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = console_audit, check_for_backend(diesel::pg::Pg))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub actor_organization: OrganizationId,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: Option<serde_json::Value>,
}

pub async fn record(conn: &mut AsyncPgConnection, entry: &NewAuditEntry<'_>) -> QueryResult<()> {
    diesel::insert_into(console_audit::table)
        .values((
            console_audit::actor.eq(entry.actor),
            console_audit::actor_organization.eq(entry.actor_organization),
            console_audit::action.eq(entry.action.as_str()),
            console_audit::target.eq(entry.target),
            console_audit::outcome.eq(entry.outcome),
            console_audit::details.eq(&entry.details),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A page of entries, newest first, older than the entry `before` (keyset on the id, which
/// grows with time).
pub async fn list(
    conn: &mut AsyncPgConnection,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = console_audit::table
        .select(AuditEntry::as_select())
        .order(console_audit::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(console_audit::id.lt(before));
    }
    query.load(conn).await
}
