//! `POST /v1/findings/auto-remediation`: validates the request, checks the assessment (and that
//! its fix's pull request was not closed by a person), and in one transaction creates (or
//! finds) the live operation and its outbox row.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use diesel_async::AsyncConnection;
use serde::Serialize;
use uuid::Uuid;

use super::AppState;
use super::auth::SCOPE_REMEDIATIONS_WRITE;
use super::error::{ApiError, Code};
use crate::config::Grouping;
use crate::db::models::AssessmentStatus;
use crate::db::{catalog, fixes, operations, outbox};
use crate::forge::check_project_repository;
use crate::lifecycle::RemediationStatus;
use crate::lifecycle::fix_plan::closed_refusal;
use crate::patch::bump::choose_target_version;
use crate::queue::message::JobMessage;
use crate::worker::grouped::GROUP_KEY;

#[derive(Debug, Serialize)]
pub struct TriggerResponse {
    pub operation_id: Uuid,
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
    state
        .rate_limit
        .check(&mut conn, caller.organization, "trigger")
        .await?;
    let organization = caller.organization;
    let rules = state.repository_rules;
    let group = state.group;
    let (operation_id, created) = conn
        .transaction(async |conn| -> Result<_, ApiError> {
            {
                let target = catalog::remediation_target(conn, assessment_id.into(), Some(organization))
                    .await?
                    .ok_or_else(|| {
                        ApiError::not_found(format!("assessment {assessment_id} not found"))
                    })?;
                if target.assessment_status != AssessmentStatus::Affected.as_str() {
                    return Err(ApiError::new(
                        Code::FailedPrecondition,
                        format!(
                            "assessment {assessment_id} has status {}; only {} assessments can be remediated",
                            target.assessment_status,
                            AssessmentStatus::Affected
                        ),
                    ));
                }
                // A job for a repository the worker must refuse would only fail later; the
                // catalog may predate the import's own check, so it is made here again.
                if let Err(refused) = check_project_repository(
                    &target.repository_url,
                    &target.default_branch,
                    &rules,
                ) {
                    return Err(ApiError::new(
                        Code::FailedPrecondition,
                        format!(
                            "assessment {assessment_id} cannot be remediated: the {} of its \
                             project {} is refused: {refused}",
                            refused.field(),
                            target.project_id
                        ),
                    )
                    .with_detail(format!("project field: {}", refused.field())));
                }
                // A pull request a person closed for this fix is not opened again. With
                // repository grouping a version bump is part of the ecosystem's grouped fix.
                let wanted =
                    choose_target_version(&target.installed_version, &target.fixed_versions);
                let key = match (group, &wanted) {
                    (Grouping::Repository, Some(_)) => GROUP_KEY,
                    _ => target.package_name.as_str(),
                };
                if let Some(fix) =
                    fixes::find(conn, target.project_id, &target.ecosystem, key).await?
                {
                    if let Some(refusal) =
                        closed_refusal(&target.package_name, &fix.record(), wanted.as_deref())
                    {
                        return Err(ApiError::new(
                            Code::FailedPrecondition,
                            format!("assessment {assessment_id} cannot be remediated: {refusal}"),
                        )
                        .with_detail(format!(
                            "remediation_status: {}",
                            RemediationStatus::PrClosed
                        )));
                    }
                }
                let (operation_id, created) =
                    operations::create_or_get_live(conn, &target).await?;
                if created {
                    outbox::enqueue(conn, &JobMessage::remediation(operation_id))
                        .await
                        .map_err(ApiError::internal)?;
                }
                Ok((operation_id, created))
            }
        })
        .await?;
    span.record("operation_id", operation_id.to_string());
    if created {
        state.relay_wake.notify_one();
        tracing::info!("remediation accepted");
    } else {
        tracing::info!("remediation already in progress; returning its operation");
    }
    Ok(Json(TriggerResponse {
        operation_id: operation_id.into(),
    }))
}

/// Parses `{"assessment_id": "<uuid>"}` with errors that name what is wrong.
fn parse_request(body: &[u8]) -> Result<Uuid, ApiError> {
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
        Some(serde_json::Value::String(s)) => Uuid::parse_str(s).map_err(|_| {
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
        let id = Uuid::new_v4();
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
