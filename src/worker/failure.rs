//! A failed step: which step, whether retrying can help, and a message a user can act on.

use std::time::Duration;

use crate::db::models::Step;
use crate::forge::ForgeError;
use crate::git::GitError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Network, timeouts, 429/5xx, database or broker blips: a later attempt may succeed.
    Transient { after: Option<Duration> },
    /// Assessment gone, repository or credentials refused, no acceptable patch: fails at once.
    Permanent,
    /// A cancel was accepted: the operation ends CANCELLED.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: Step,
    pub retry: Retry,
    pub message: String,
}

impl StepFailure {
    pub fn permanent(step: Step, message: impl Into<String>) -> Self {
        StepFailure {
            step,
            retry: Retry::Permanent,
            message: message.into(),
        }
    }

    pub fn transient(step: Step, message: impl Into<String>) -> Self {
        StepFailure {
            step,
            retry: Retry::Transient { after: None },
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self.retry, Retry::Transient { .. })
    }

    pub fn from_git(step: Step, error: GitError) -> Self {
        match error {
            GitError::Transient(m) => Self::transient(step, m),
            GitError::Permanent(m) => Self::permanent(step, m),
        }
    }

    pub fn from_forge(step: Step, error: ForgeError) -> Self {
        let after = error.retry_after();
        match error {
            ForgeError::Transient { message, .. } => StepFailure {
                step,
                retry: Retry::Transient { after },
                message,
            },
            ForgeError::Permanent(message) => Self::permanent(step, message),
        }
    }

    /// A database error inside a step is a blip as far as the job is concerned.
    pub fn from_database(step: Step, error: impl std::fmt::Display) -> Self {
        Self::transient(step, format!("database error: {error}"))
    }

    /// "step push failed: <message>" for the operation's error_message and history.
    pub fn describe(&self) -> String {
        format!("step {} failed: {}", self.step, self.message)
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}
