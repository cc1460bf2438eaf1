//! Remediator: turns "project P is AFFECTED by vulnerability V in package X" into a pull request
//! that fixes it.
//!
//! The modules follow the flow of a request:
//! `api` (intake) -> `db` (operation + outbox in one transaction) -> `queue` (relay, topology)
//! -> `worker` (pipeline) -> `git`, `patch`, `llm`, `forge` (what the pull request says:
//! `pr_text`) -> write back in `db`.
//! `repository_admission` is the check the intake and `remediator import` run on a project's
//! repository before accepting it. `commands` holds one file per subcommand of the binary;
//! `console` is the operators' web console the intake serves at `/console/`.

pub mod api;
pub mod commands;
pub mod config;
pub mod console;
pub mod db;
pub mod ecosystem;
pub mod egress;
pub mod errors;
pub mod forge;
pub mod git;
pub mod import;
pub mod lifecycle;
pub mod llm;
pub mod lockfile;
pub mod metrics;
pub mod patch;
pub mod pr_text;
pub mod queue;
pub mod repository_admission;
pub mod sandbox;
pub mod shutdown;
pub mod telemetry;
pub mod verify;
pub mod webhooks;
pub mod worker;
