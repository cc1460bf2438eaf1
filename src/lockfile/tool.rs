//! One shape for every lock tool. A [`LockTool`] is data: its name, the lock files it owns
//! (each with the manifest beside it and how it is read back for the package's copies: the
//! proof of fix, and the transitive search before any tool runs), and the function that
//! updates them for a fix (the direct fix and the lock-only move both arrive as a
//! [`LockTarget`]). [`tools`] is the one place that says which tools serve an ecosystem.
//!
//! Adding a lock tool is one file (its `update` and its lock reader, ending with its
//! [`LockTool`] constant) and one line in [`tools`]. [`upgrade_path`] says, beside it, what
//! moves a copy the ecosystem's dependents hold below the fix ([`super::upgrade_path`]).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use super::upgrade_path::UpgradePath;
use super::{FixedVersions, LockError, LockOutcome, LockTarget, LockfileSettings, Resolved};
use crate::ecosystem::Ecosystem;
use crate::sandbox::Sandbox;

/// Where a lock tool runs: the sandbox, the lock settings and the job's clone.
#[derive(Clone, Copy)]
pub struct LockContext<'a> {
    pub sandbox: &'a Sandbox,
    pub settings: &'a LockfileSettings,
    pub work_tree: &'a Path,
}

/// What a lock tool's update gives: the locks it changed and read back.
pub type Updated = Result<LockOutcome, LockError>;

/// What [`LockTool::update`] returns: the tools run in the sandbox, so the update is async.
pub type Update<'a> = Pin<Box<dyn Future<Output = Updated> + Send + 'a>>;

/// Updates the locks covering the target's manifests and reads them back.
pub type UpdateLocks = for<'a> fn(LockContext<'a>, &'a LockTarget<'a>) -> Update<'a>;

/// Reads a lock's text (at `lock`, repository-relative) for the copies of `package` it
/// resolves, each judged against `fixes`.
pub type ReadCopies =
    fn(text: &str, lock: &str, package: &str, fixes: &FixedVersions) -> Vec<Resolved>;

/// A lock file a tool owns: its name, the manifest beside it, and how it is read.
pub struct LockFile {
    pub name: &'static str,
    pub manifest: &'static str,
    pub copies: ReadCopies,
}

impl LockFile {
    /// The lock file `name`, beside the manifest `manifest`, read by `copies`.
    pub const fn beside(name: &'static str, manifest: &'static str, copies: ReadCopies) -> Self {
        LockFile {
            name,
            manifest,
            copies,
        }
    }
}

/// One lock tool; see the module documentation.
pub struct LockTool {
    /// The tool as settings and messages name it (`npm`, `cargo`, `pip-compile`).
    pub name: &'static str,
    /// The lock files the transitive search reads for this tool (empty: its locks have no
    /// fixed name, as pip-compile's outputs).
    pub lock_files: &'static [LockFile],
    pub update: UpdateLocks,
}

/// The tools that update an ecosystem's locks, in the order they run.
pub fn tools(ecosystem: &Ecosystem) -> &'static [&'static LockTool] {
    match ecosystem {
        Ecosystem::Npm => &[&super::npm::TOOL, &super::pnpm::TOOL, &super::yarn::TOOL],
        Ecosystem::CratesIo => &[&super::cargo::TOOL],
        Ecosystem::PyPi => &[
            &super::uv::TOOL,
            &super::poetry::TOOL,
            &super::pip_compile::TOOL,
        ],
        Ecosystem::Go => &[&super::go::TOOL],
        // Maven's lock is the pom itself; other ecosystems have no lock tool here.
        Ecosystem::Maven | Ecosystem::Other(_) => &[],
    }
}

/// What moves a transitive copy an ecosystem's dependents hold below the fix, when its
/// tools' lock-only update moved nothing; `None`: the ecosystem has none (Go: `go get` already
/// moves what its requirements allow).
pub fn upgrade_path(ecosystem: &Ecosystem) -> Option<&'static UpgradePath> {
    match ecosystem {
        Ecosystem::Npm => Some(&super::upgrade_path::npm::PATH),
        Ecosystem::CratesIo => Some(&super::upgrade_path::cargo::PATH),
        Ecosystem::PyPi => Some(&super::upgrade_path::python::PATH),
        Ecosystem::Go | Ecosystem::Maven | Ecosystem::Other(_) => None,
    }
}

/// The lock file named `name` that a tool of `ecosystem` owns.
pub fn lock_file(ecosystem: &Ecosystem, name: &str) -> Option<&'static LockFile> {
    tools(ecosystem)
        .iter()
        .flat_map(|tool| tool.lock_files)
        .find(|file| file.name == name)
}
