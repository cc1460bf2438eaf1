//! The LLM side of the patch writer: settings, the OpenAI-compatible chat-completions client,
//! the choice of repository files shown to the model, the prompt that fences them as untrusted
//! data (and the repair prompt, after a fix broke the project's tests), and the strict parsing of the model's answer into edits.
//!
//! The worker drives the loop: [`select_context`] -> [`Conversation::start`] ->
//! [`LlmClient::complete_within`] -> [`parse_answer`] -> [`materialize`] -> patch policy; on a failed
//! step it calls [`Conversation::add_repair`] with the error and asks again, up to
//! [`LlmSettings::max_rounds`] calls. The model's answer is only ever data we parse and check.

mod answer;
mod answer_schema;
mod client;
mod context;
mod prompt;
mod repair_prompt;
mod settings;

use crate::ecosystem::Ecosystem;
pub use answer::{ModelAnswer, ModelEdit, materialize, parse_answer};
pub use client::{CallStats, Completion, JobBudget, LlmClient, LlmError, TimeLimit, Usage};
pub use context::{DirFiles, HeadFiles, RepoFiles, select_context};
pub use prompt::{ChatMessage, Conversation, Role};
pub use repair_prompt::{
    RepairBrief, TestFailure, UpgradedPackage, repair_conversation, still_failing,
};
pub use settings::LlmSettings;

/// What we know about the vulnerability being fixed; the facts the prompt states.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VulnerabilityFacts {
    pub id: String,
    pub aliases: Vec<String>,
    pub severity: String,
    pub summary: String,
    /// As the ecosystem names it: `serde`, `@babel/core`, `golang.org/x/net`,
    /// `org.apache.logging.log4j:log4j-core`.
    pub package: String,
    pub ecosystem: Ecosystem,
    pub installed_version: String,
    pub fixed_versions: Vec<String>,
    pub target_version: Option<String>,
}

/// One repository file (or excerpt of it) shown to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    pub content: String,
    /// True when `content` holds only excerpts of the file.
    pub truncated: bool,
}
