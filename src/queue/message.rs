//! The job message: a versioned, tagged type that only points at an operation (Postgres is the
//! source of truth), plus the headers we set ourselves.

use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::lifecycle::{DeadReason, OperationId};

/// Our own attempt counter: RabbitMQ 4 no longer counts `x-death` on republished messages.
pub const ATTEMPT_HEADER: &str = "x-remediator-attempt";
/// Why a message was dead-lettered, and the last error, for `dlq list`/`show`.
pub const DEAD_REASON_HEADER: &str = "x-remediator-dead-reason";
pub const LAST_ERROR_HEADER: &str = "x-remediator-last-error";
/// When we dead-lettered it (Unix seconds); the broker's own dead-lettering writes `x-death`.
pub const DEAD_AT_HEADER: &str = "x-remediator-dead-at";

/// Adds the headers that say why and when we dead-lettered a message.
pub fn mark_dead(headers: &mut FieldTable, reason: DeadReason, last_error: &str) {
    headers.insert(
        DEAD_REASON_HEADER.into(),
        AMQPValue::LongString(reason.as_str().into()),
    );
    headers.insert(
        LAST_ERROR_HEADER.into(),
        AMQPValue::LongString(last_error.into()),
    );
    headers.insert(
        DEAD_AT_HEADER.into(),
        AMQPValue::LongLongInt(chrono::Utc::now().timestamp()),
    );
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobMessage {
    /// Remediate the assessment behind this operation.
    #[serde(rename = "remediation.v1")]
    RemediationV1 {
        operation_id: OperationId,
        /// 1 for the first delivery; each delayed retry republishes with the next number.
        attempt: u32,
        /// Ties the logs of intake, relay and worker for one request together.
        trace_id: String,
    },
}

impl JobMessage {
    pub fn remediation(operation_id: OperationId) -> Self {
        JobMessage::RemediationV1 {
            operation_id,
            attempt: 1,
            trace_id: Uuid::new_v4().simple().to_string(),
        }
    }

    pub fn operation_id(&self) -> OperationId {
        match self {
            JobMessage::RemediationV1 { operation_id, .. } => *operation_id,
        }
    }

    pub fn attempt(&self) -> u32 {
        match self {
            JobMessage::RemediationV1 { attempt, .. } => *attempt,
        }
    }

    pub fn trace_id(&self) -> &str {
        match self {
            JobMessage::RemediationV1 { trace_id, .. } => trace_id,
        }
    }

    /// The same job, for its next attempt.
    pub fn next_attempt(&self) -> Self {
        match self {
            JobMessage::RemediationV1 {
                operation_id,
                attempt,
                trace_id,
            } => JobMessage::RemediationV1 {
                operation_id: *operation_id,
                attempt: attempt.saturating_add(1),
                trace_id: trace_id.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged_and_versioned() {
        let id = OperationId(Uuid::nil());
        let msg = JobMessage::RemediationV1 {
            operation_id: id,
            attempt: 2,
            trace_id: "t".into(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "remediation.v1", "operation_id": id, "attempt": 2, "trace_id": "t"})
        );
        assert_eq!(serde_json::from_value::<JobMessage>(json).unwrap(), msg);
        assert!(serde_json::from_str::<JobMessage>(r#"{"type":"remediation.v9"}"#).is_err());
        assert_eq!(msg.next_attempt().attempt(), 3);
    }
}
