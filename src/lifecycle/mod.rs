//! The job lifecycle as types: the states an operation moves through ([`OperationStatus`]),
//! the steps a job runs ([`Step`]), what the assessment says about its fix
//! ([`RemediationStatus`]), what a line of an operation's history records ([`EventKind`]),
//! typed ids, and the pure decisions that move a job from one state to the next ([`decide`]). Nothing here does I/O: the worker's runner turns a decision into
//! database writes, publishes and acks, so every rule about retries, dead letters and crash
//! loops is unit-tested here without Postgres or RabbitMQ.
//!
//! The invariants the code cites ("invariant 5") are listed in ARCHITECTURE.md.

pub mod decide;
pub mod fix_plan;
pub mod fix_scope;
pub mod ids;
pub mod status;

pub use decide::{Admission, DeadReason, Limits, Outcome, Settlement, admit, decide};
pub use fix_scope::FixScope;
pub use ids::{
    AssessmentId, FindingId, FixId, OperationId, OrganizationId, ProjectId, ProjectVersionId,
};
pub use status::{EventKind, OperationStatus, RemediationStatus, Step};
