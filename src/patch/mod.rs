//! Patches: the shared description of a proposed change to a repository's files (`edit`), the
//! policy every patch must pass before it is committed (`policy`, `path`, `size`,
//! `test_files`), and the
//! deterministic dependency version bump that produces patches without an LLM (`bump`).

pub mod bump;
pub mod edit;
pub mod path;
pub mod policy;
pub mod size;
pub mod test_files;

pub use edit::{ExistingEntry, FileEdit};
pub use policy::{PatchPolicy, PolicyConfigError, PolicyRule, PolicySettings, PolicyViolation};
