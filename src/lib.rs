//! Remediator: turns "project P is AFFECTED by vulnerability V in package X" into a pull request
//! that fixes it.
//!
//! The modules follow the flow of a request:
//! intake (`api`) -> `db` (operation + outbox in one transaction) -> `queue` (relay, topology)
//! -> `worker` (pipeline) -> `git`, `patch`, `llm`, `forge` -> write back in `db`.

pub mod git;
