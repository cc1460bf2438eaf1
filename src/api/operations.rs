//! The polling API (Chainloop's AsyncOperationsService): one operation, or a filtered page of
//! them, always scoped to the caller's organisation.

use crate::lifecycle::OrganizationId;
use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel_async::AsyncConnection;
use serde::Serialize;

use super::AppState;
use super::auth::{SCOPE_OPERATIONS_READ, SCOPE_REMEDIATIONS_WRITE};
use super::error::{ApiError, Code};
use crate::db::models::Operation;
use crate::db::operations::{self, CancelOutcome, ListFilter};
use crate::lifecycle::{
    AssessmentId, OperationId, OperationStatus, ProjectId, ProjectVersionId, Step,
};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 100;
/// The status filter value that means "any status", as the API's enum spells it.
const UNSPECIFIED: &str = "ASYNC_OPERATION_STATUS_UNSPECIFIED";

/// AsyncOperationResult, plus the worker's current step and attempt count.
#[derive(Debug, Serialize)]
pub struct OperationView {
    pub id: OperationId,
    pub kind: String,
    pub status: OperationStatus,
    pub resource_type: String,
    pub resource_id: AssessmentId,
    pub project_id: ProjectId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_version_id: Option<ProjectVersionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
    pub attempts: i32,
    /// A cancel was accepted and the worker will stop at its next step boundary.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<Operation> for OperationView {
    fn from(op: Operation) -> Self {
        let cancel_requested =
            op.cancel_requested_at.is_some() && op.status == OperationStatus::Running;
        OperationView {
            id: op.id,
            kind: op.kind,
            status: op.status,
            resource_type: op.resource_type,
            resource_id: op.resource_id,
            project_id: op.project_id,
            project_version_id: op.project_version_id,
            output: op.output,
            error_message: op.error_message,
            created_at: rfc3339(op.created_at),
            started_at: op.started_at.map(rfc3339),
            finished_at: op.finished_at.map(rfc3339),
            step: op.step,
            attempts: op.attempts,
            cancel_requested,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GetResponse {
    pub operation: OperationView,
}

#[tracing::instrument(skip_all, fields(operation_id = %id))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<GetResponse>, ApiError> {
    let caller = state.auth.authenticate(&headers).await?;
    caller.require(SCOPE_OPERATIONS_READ)?;
    let id = parse_id(&id)?;
    let mut conn = state.pool.get().await?;
    let operation = operations::get(&mut conn, id, Some(caller.organization))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("operation {id} not found")))?;
    Ok(Json(GetResponse {
        operation: operation.into(),
    }))
}

/// `POST /v1/operations/{id}/cancel`: a PENDING operation is CANCELLED at once; a RUNNING one
/// stops at its next step boundary, unless it is already pushing (then the cancel is refused,
/// so nothing is ever pushed after a cancel was accepted).
#[tracing::instrument(skip_all, fields(operation_id = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<GetResponse>, ApiError> {
    let caller = state.auth.authenticate(&headers).await?;
    caller.require(SCOPE_REMEDIATIONS_WRITE)?;
    let id = parse_id(&id)?;
    let operation = cancel_operation(&state, id, caller.organization, &caller.subject).await?;
    tracing::info!(status = %operation.status, "cancel accepted");
    Ok(Json(GetResponse {
        operation: operation.into(),
    }))
}

/// Cancels an operation of `organization` on behalf of `subject`: the one implementation behind
/// the API's cancel and the console's Cancel button. The organisation's rate limit applies;
/// the status change and the event saying who cancelled are one transaction, so a failure
/// writing the event cannot leave a CANCELLED operation without its history (and a retry
/// answering "already ended").
pub async fn cancel_operation(
    state: &AppState,
    id: OperationId,
    organization: OrganizationId,
    subject: &str,
) -> Result<Operation, ApiError> {
    let mut conn = state.pool.get().await?;
    state
        .rate_limit
        .check(&mut conn, organization, "cancel")
        .await?;
    let outcome = conn
        .transaction(async |conn| -> Result<_, ApiError> {
            Ok(operations::cancel(conn, id, organization, subject).await?)
        })
        .await?;
    match outcome {
        CancelOutcome::Cancelled(op) | CancelOutcome::Requested(op) => Ok(op),
        CancelOutcome::NotFound => Err(ApiError::not_found(format!("operation {id} not found"))),
        CancelOutcome::TooLate { step } => Err(ApiError::new(
            Code::FailedPrecondition,
            format!(
                "operation {id} is at step {step}: its branch may already be pushed, so it can no longer be cancelled"
            ),
        )),
        CancelOutcome::AlreadyEnded { status } => Err(ApiError::new(
            Code::FailedPrecondition,
            format!("operation {id} already ended with status {status}"),
        )),
    }
}

fn parse_id(id: &str) -> Result<OperationId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid_argument(format!("operation_id must be a UUID, got {id:?}")))
}

#[derive(Debug, Serialize)]
pub struct Pagination {
    pub total_count: i64,
    pub page: i64,
    pub total_pages: i64,
    pub page_size: i64,
}

#[derive(Debug, Serialize)]
pub struct ListResponse {
    pub operations: Vec<OperationView>,
    pub pagination: Pagination,
}

#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ListResponse>, ApiError> {
    let caller = state.auth.authenticate(&headers).await?;
    caller.require(SCOPE_OPERATIONS_READ)?;
    // Any parameter may end up in a query or a log line; none may carry a control character.
    for (key, value) in &query {
        super::guard::check_text(&printable_key(key), key)?;
        super::guard::check_text(&printable_key(key), value)?;
    }
    let page = parse_number(&query, "pagination.page", 0)?;
    let page_size = parse_number(&query, "pagination.page_size", DEFAULT_PAGE_SIZE)?;
    if page < 0 {
        return Err(ApiError::invalid_argument(
            "pagination.page must be 0 or more",
        ));
    }
    let page_size = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => {
            return Err(ApiError::invalid_argument(
                "pagination.page_size must be 0 or more",
            ));
        }
        n => n.min(MAX_PAGE_SIZE),
    };
    let filter = parse_filter(&query)?;

    let mut conn = state.pool.get().await?;
    let (rows, total_count) =
        operations::list(&mut conn, caller.organization, &filter, page, page_size).await?;
    Ok(Json(ListResponse {
        operations: rows.into_iter().map(OperationView::from).collect(),
        pagination: Pagination {
            total_count,
            page,
            total_pages: (total_count + page_size - 1) / page_size,
            page_size,
        },
    }))
}

/// A query parameter's name for an error message: as sent when it is short and plain.
fn printable_key(key: &str) -> String {
    if key.len() <= 40 && key.chars().all(|c| c.is_ascii_graphic()) {
        key.to_owned()
    } else {
        "a query parameter name".to_owned()
    }
}

fn parse_number(query: &HashMap<String, String>, key: &str, default: i64) -> Result<i64, ApiError> {
    match query.get(key).map(String::as_str) {
        None | Some("") => Ok(default),
        Some(raw) => raw.parse().map_err(|_| {
            ApiError::invalid_argument(format!("{key} must be an integer, got {raw:?}"))
        }),
    }
}

fn parse_filter(query: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
    // The published schema says `minLength: 1`: an empty resource filter is refused rather
    // than read as absent, which would turn `resource_type=&resource_id=X` into a lone id.
    for key in ["resource_type", "resource_id"] {
        if query.get(key).is_some_and(|v| v.is_empty()) {
            return Err(ApiError::invalid_argument(format!(
                "{key} must not be empty; leave resource_type and resource_id out to list \
                 operations on every resource"
            )));
        }
    }
    let non_empty = |key: &str| query.get(key).filter(|v| !v.is_empty());
    let resource = match (non_empty("resource_type"), non_empty("resource_id")) {
        (None, None) => None,
        (Some(kind), Some(id)) => {
            let id: AssessmentId = id.parse().map_err(|_| {
                ApiError::invalid_argument(format!("resource_id must be a UUID, got {id:?}"))
            })?;
            Some((kind.clone(), id))
        }
        _ => {
            return Err(ApiError::invalid_argument(
                "resource_type and resource_id must be given together",
            ));
        }
    };
    let status = match non_empty("status").map(String::as_str) {
        None | Some(UNSPECIFIED) => None,
        Some(raw) => Some(OperationStatus::parse(raw).ok_or_else(|| {
            ApiError::invalid_argument(format!("unknown status {raw:?}")).with_detail(format!(
                "expected one of: {}",
                OperationStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    Ok(ListFilter { resource, status })
}
