//! `POST /v1/findings/auto-remediation`: validates the request, then in two statements
//! (`db::intake`) takes the rate-limit token and reads the assessment, checks it (and that its
//! fix's pull request was not closed by a person), and creates (or finds) the live operation
//! with its outbox row.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;

use super::AppState;
use super::auth::SCOPE_REMEDIATIONS_WRITE;
use super::error::{ApiError, Code};
use crate::config::Grouping;
use crate::db::intake;
use crate::db::models::AssessmentStatus;
use crate::db::models::RemediationTarget;
use crate::lifecycle::fix_plan::closed_refusal;
use crate::lifecycle::{AssessmentId, FixScope, OperationId, RemediationStatus};
use crate::repository_admission::check_project_repository;

#[derive(Debug, Serialize)]
pub struct TriggerResponse {
    pub operation_id: OperationId,
}

#[tracing::instrument(skip_all, fields(organization, assessment_id, operation_id))]
pub async fn trigger(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TriggerResponse>, ApiError> {
    let caller = state.auth.authenticate(&headers).await?;
    caller.require(SCOPE_REMEDIATIONS_WRITE)?;
    let span = tracing::Span::current();
    span.record("organization", caller.organization.to_string());

    let body = super::guard::read_body(body, state.limits).await?;
    let assessment_id = parse_request(&body)?;
    span.record("assessment_id", assessment_id.to_string());

    let mut conn = state.pool.get().await?;
    let organization = caller.organization;
    let looked_up = intake::look_up(
        &mut conn,
        organization,
        state.rate_limit.bucket(),
        assessment_id,
        FixScope::Group.key(),
    )
    .await?;
    if let Some(take) = looked_up.take {
        state.rate_limit.answer(take, organization, "trigger")?;
    }
    let target = looked_up
        .target
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("assessment {assessment_id} not found")))?;
    admissible(assessment_id, target, &looked_up, &state)?;
    let (operation_id, created) = intake::create_live_with_job(&mut conn, target)
        .await
        .map_err(ApiError::internal)?;
    span.record("operation_id", operation_id.to_string());
    if created {
        state.relay_wake.notify_one();
        tracing::info!("remediation accepted");
    } else {
        tracing::info!("remediation already in progress; returning its operation");
    }
    Ok(Json(TriggerResponse { operation_id }))
}

/// Refuses an assessment that is not AFFECTED, whose project's repository the worker would
/// refuse, or whose fix's pull request a person closed.
fn admissible(
    assessment_id: AssessmentId,
    target: &RemediationTarget,
    looked_up: &intake::Lookup,
    state: &AppState,
) -> Result<(), ApiError> {
    if target.assessment_status != AssessmentStatus::Affected {
        return Err(ApiError::new(
            Code::FailedPrecondition,
            format!(
                "assessment {assessment_id} has status {}; only {} assessments can be remediated",
                target.assessment_status,
                AssessmentStatus::Affected
            ),
        ));
    }
    // A job for a repository the worker must refuse would only fail later; the catalog may
    // predate the import's own check, so it is made here again.
    if let Err(refused) = check_project_repository(
        &target.repository_url,
        &target.default_branch,
        &state.repository_rules,
    ) {
        return Err(ApiError::new(
            Code::FailedPrecondition,
            format!(
                "assessment {assessment_id} cannot be remediated: the {} of its project {} is \
                 refused: {refused}",
                refused.field(),
                target.project_id
            ),
        )
        .with_detail(format!("project field: {}", refused.field())));
    }
    // A pull request a person closed for this fix is not opened again. With repository
    // grouping a version bump is part of the ecosystem's grouped fix.
    let wanted = target.target_version();
    let fix = match (state.group, &wanted) {
        (Grouping::Repository, Some(_)) => looked_up.group_fix.as_ref(),
        _ => looked_up.package_fix.as_ref(),
    };
    if let Some(refusal) = fix.and_then(|fix| {
        closed_refusal(&target.facts.package_name, &fix.record(), wanted.as_deref())
    }) {
        return Err(ApiError::new(
            Code::FailedPrecondition,
            format!("assessment {assessment_id} cannot be remediated: {refusal}"),
        )
        .with_detail(format!(
            "remediation_status: {}",
            RemediationStatus::PrClosed
        )));
    }
    Ok(())
}

/// Parses `{"assessment_id": "<uuid>"}` with errors that name what is wrong.
fn parse_request(body: &[u8]) -> Result<AssessmentId, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_argument("the request body is not valid JSON").with_detail(e.to_string())
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::invalid_argument("the request body must be a JSON object"))?;
    match object.get("assessment_id") {
        None | Some(serde_json::Value::Null) => {
            Err(ApiError::invalid_argument("assessment_id is required"))
        }
        Some(serde_json::Value::String(s)) => s.parse().map_err(|_| {
            ApiError::invalid_argument(format!("assessment_id must be a UUID, got {s:?}"))
        }),
        Some(_) => Err(ApiError::invalid_argument(
            "assessment_id must be a string holding a UUID",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parsing_names_the_problem() {
        let id = AssessmentId::new_random();
        assert_eq!(
            parse_request(format!(r#"{{"assessment_id":"{id}"}}"#).as_bytes()).unwrap(),
            id
        );
        for (body, needle) in [
            (&b"{"[..], "not valid JSON"),
            (b"[]", "JSON object"),
            (b"{}", "required"),
            (br#"{"assessment_id":"nope"}"#, "must be a UUID"),
            (br#"{"assessment_id":5}"#, "must be a string"),
        ] {
            let err = parse_request(body).unwrap_err();
            assert_eq!(err.code, Code::InvalidArgument);
            assert!(err.message.contains(needle), "{}", err.message);
        }
    }
}
