//! Which dead letters a command acts on: by operation, reason, project and age.

use std::time::Duration;

use chrono::Utc;

use super::{DeadLetter, DeadLetterReason};
use crate::lifecycle::{OperationId, ProjectId};

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub operation_ids: Vec<OperationId>,
    pub reason: Option<DeadLetterReason>,
    pub project: Option<ProjectId>,
    pub older_than: Option<Duration>,
}

impl Filter {
    pub fn matches(&self, dead: &DeadLetter) -> bool {
        if !self.operation_ids.is_empty()
            && !dead
                .operation_id
                .is_some_and(|id| self.operation_ids.contains(&id))
        {
            return false;
        }
        if self.reason.as_ref().is_some_and(|r| *r != dead.reason) {
            return false;
        }
        if self.project.is_some() && self.project != dead.project_id {
            return false;
        }
        if let Some(age) = self.older_than {
            let limit = Utc::now() - chrono::Duration::from_std(age).unwrap_or_default();
            if dead.dead_at.is_none_or(|at| at > limit) {
                return false;
            }
        }
        true
    }
}
