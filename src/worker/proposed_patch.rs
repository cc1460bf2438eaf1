//! What a patcher proposes: the file edits, who wrote them (the bump, the lock alone, or the
//! model) and how the fix works. The patcher, the LLM fix and the repair rounds all produce it;
//! the steps after generate read it.

use serde_json::json;

use super::failure::StepFailure;
use crate::db::models::RemediationTarget;
use crate::git::inspect_entry;
use crate::lifecycle::Step;
use crate::llm::{CallStats, Usage};
use crate::patch::{ExistingEntry, FileEdit};

/// How a fix removes the vulnerable version: the operation output's `strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixStrategy {
    /// A manifest declares the package, and its requirement is raised.
    Manifest,
    /// The package is transitive; the lock alone moves it.
    LockOnly,
    /// The package is transitive and its dependents pin it below the fix: a direct dependency
    /// is raised to a release whose own range admits the fix.
    ParentUpgrade,
    /// The package is transitive and no upgrade of its dependents admits the fix: an override
    /// forces the fixed version on them.
    Override,
}

/// Who wrote a patch, for the PR text and the operation output.
#[derive(Debug, Clone)]
pub enum PatchAuthor {
    Bump,
    /// No manifest declares the package (it is transitive): no file is edited here, and the
    /// lock step moves it in the lock files that resolve it.
    LockOnly,
    Llm {
        model: String,
        rounds: u32,
        usage: Usage,
        confidence: f64,
        /// Every call of the job, refused answers included: how long the model took, what
        /// it produced, and which response format and transport the server accepted.
        calls: Vec<CallStats>,
    },
}

#[derive(Debug, Clone)]
pub struct ProposedPatch {
    pub edits: Vec<FileEdit>,
    pub author: PatchAuthor,
    pub target_version: Option<String>,
    pub explanation: String,
}

impl ProposedPatch {
    /// The version the fix moves the package to: the patch's, or the target's planned one
    /// when the patch names none.
    pub fn version_for(&self, target: &RemediationTarget) -> Option<String> {
        self.target_version
            .clone()
            .or_else(|| target.target_version())
    }

    pub fn confidence(&self) -> Option<f64> {
        match &self.author {
            PatchAuthor::Bump | PatchAuthor::LockOnly => None,
            PatchAuthor::Llm { confidence, .. } => Some(*confidence),
        }
    }

    pub fn model(&self) -> Option<&str> {
        match &self.author {
            PatchAuthor::Bump | PatchAuthor::LockOnly => None,
            PatchAuthor::Llm { model, .. } => Some(model),
        }
    }

    /// Whether the fix is a lock-only update of a transitive dependency.
    pub fn is_lock_only(&self) -> bool {
        matches!(self.author, PatchAuthor::LockOnly)
    }

    /// The patcher's part of the operation output, with the strategy the fix follows.
    pub fn describe(&self) -> serde_json::Value {
        match &self.author {
            PatchAuthor::Bump => json!({"patcher": "bump", "strategy": FixStrategy::Manifest}),
            PatchAuthor::LockOnly => {
                json!({"patcher": "bump", "strategy": FixStrategy::LockOnly})
            }
            PatchAuthor::Llm {
                model,
                rounds,
                usage,
                confidence,
                calls,
            } => {
                let model_ms: u64 = calls.iter().map(|c| c.elapsed_ms).sum();
                json!({
                    "patcher": "llm",
                    "strategy": FixStrategy::Manifest,
                    "llm": {
                        "model": model,
                        "rounds": rounds,
                        "usage": usage,
                        "confidence": confidence,
                        "model_ms": model_ms,
                        "calls": calls,
                    },
                })
            }
        }
    }
}

/// What the policy needs to know about a path in the clone.
pub fn existing_entry(repo: &git2::Repository, path: &str) -> Result<ExistingEntry, StepFailure> {
    inspect_entry(repo, path).map_err(|e| StepFailure::from_git(Step::Generate, e))
}
