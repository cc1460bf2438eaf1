//! The worker (`remediator worker`): consumes jobs, runs the remediation pipeline, and records
//! every step on the operation.
//!
//! `runner` owns the queue side (deliveries, claims, the decision of `lifecycle`), `settle`
//! carries a decision out (database writes, publishes, acks), `job` runs one job under guard
//! (heartbeat, deadline, panics), `pipeline` lists the steps of a job and `steps/` holds one
//! file per step and the driver they go through; `patcher` and `llm_fix` write the patch,
//! `failure` classifies and explains a failed step, `rescuer` requeues jobs whose worker
//! vanished, `fix_lock` serialises the jobs of one package around its pull request, and
//! `reconciler` follows open pull requests on the forges; `grouped` is the job of
//! `worker.group = "repository"`.

pub mod confidence;
pub mod context;
pub mod failure;
pub mod fix_lock;
pub mod git_work;
pub mod grouped;
pub mod job;
pub mod llm_fix;
pub mod manifests;
pub mod memory_budget;
pub mod patcher;
pub mod pipeline;
pub mod proposed_patch;
pub mod publish;
pub mod reconciler;
pub mod repair;
pub mod rescuer;
pub mod retry;
pub mod runner;
pub mod settle;
pub mod steps;
