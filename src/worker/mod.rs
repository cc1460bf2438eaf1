//! The worker (`remediator worker`): consumes jobs, runs the remediation pipeline, and records
//! every step on the operation.
//!
//! `runner` owns the queue side (deliveries, acks, retries, dead letters), `pipeline` the
//! steps of one job, `patcher` and `llm_fix` who writes the patch, `failure` how a failed
//! step is classified and explained.

pub mod failure;
pub mod llm_fix;
pub mod manifests;
pub mod patcher;
pub mod pipeline;
pub mod rescuer;
pub mod retry;
pub mod runner;
