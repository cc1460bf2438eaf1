//! The crate's error rule, and the error type of each layer in one place.
//!
//! - **Library layers return their own typed error**, saying whether retrying can help:
//!   `git` returns [`GitError`] (transient or permanent), `forge` returns [`ForgeError`]
//!   (transient with an optional `Retry-After`, or permanent), `llm` its client error, `patch`
//!   a policy violation. `db` returns diesel's `QueryResult`. None of them logs.
//! - **A worker step** turns those into a [`StepFailure`] (the step, transient / permanent /
//!   cancelled, a message a user can act on). The runner never logs a failure it passes on:
//!   `worker::settle` logs each job's outcome once, where it becomes the operation's status.
//! - **HTTP handlers** return [`ApiError`], the contract's `{"code", "message", "details"}`;
//!   an unexpected cause is logged once, where it becomes a 500, and the caller gets a generic
//!   message.
//! - **Commands and start-up** use `anyhow` with context; `main` prints the chain once.
//! - **Background loops** (relay, rescuer, metrics sampler, heartbeats) log a failed round at
//!   `warn` and go on; they have no caller to return to.

pub use crate::api::error::ApiError;
pub use crate::forge::ForgeError;
pub use crate::git::GitError;
pub use crate::worker::failure::StepFailure;
