//! A dead message decoded for display and filtering: the operation it points at, and why,
//! when and after how many attempts it died, read from our headers or, where the broker
//! dead-lettered it itself, from its `x-first-death-reason` and `x-death`.

use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;

use super::DeadLetterReason;
use crate::lifecycle::{OperationId, ProjectId};
use crate::queue::message::{
    ATTEMPT_HEADER, DEAD_AT_HEADER, DEAD_REASON_HEADER, JobMessage, LAST_ERROR_HEADER,
};

/// One dead message, decoded for display and filtering.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub operation_id: Option<OperationId>,
    pub project_id: Option<ProjectId>,
    pub reason: DeadLetterReason,
    pub last_error: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
    pub attempt: Option<i64>,
    pub body: String,
    pub headers: serde_json::Value,
    #[serde(skip)]
    pub message: Option<JobMessage>,
}

/// Decodes a dead message; its project is filled in by the caller, for the whole batch.
pub(super) fn decode(delivery: &Delivery) -> DeadLetter {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    let message: Option<JobMessage> = serde_json::from_slice(&delivery.data).ok();
    let operation_id = message.as_ref().map(JobMessage::operation_id);
    let reason = header_text(&headers, DEAD_REASON_HEADER)
        .or_else(|| header_text(&headers, "x-first-death-reason"))
        .map_or_else(DeadLetterReason::unrecorded, |text| {
            DeadLetterReason::parse(&text)
        });
    let dead_at = header_int(&headers, DEAD_AT_HEADER)
        .or_else(|| first_death_time(&headers))
        .and_then(|secs| DateTime::from_timestamp(secs, 0));
    DeadLetter {
        operation_id,
        project_id: None,
        reason,
        last_error: header_text(&headers, LAST_ERROR_HEADER),
        dead_at,
        attempt: header_int(&headers, ATTEMPT_HEADER),
        body: String::from_utf8_lossy(&delivery.data).into_owned(),
        headers: headers_json(&headers),
        message,
    }
}

fn header_text(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn header_int(headers: &FieldTable, key: &str) -> Option<i64> {
    match headers.inner().get(key)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::Timestamp(t) => i64::try_from(*t).ok(),
        _ => None,
    }
}

/// The broker's own dead-lettering (delivery limit) records the time in `x-death`.
fn first_death_time(headers: &FieldTable) -> Option<i64> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    deaths.as_slice().iter().find_map(|death| match death {
        AMQPValue::FieldTable(table) => match table.inner().get("time")? {
            AMQPValue::Timestamp(t) => i64::try_from(*t).ok(),
            _ => None,
        },
        _ => None,
    })
}

fn headers_json(headers: &FieldTable) -> serde_json::Value {
    serde_json::to_value(headers).unwrap_or(serde_json::Value::Null)
}
