//! Cargo: `cargo fetch --locked` (the registries, with `lockfiles.cargo_config` as the lock
//! step has it) then `cargo test --locked --offline --no-fail-fast` (no network; every test
//! target runs even when one fails, so each side names all its tests). As in the lock step,
//! the worker's toolchain runs (rustup is never asked for the repository's), read-only, and
//! the executables a repository's `.cargo/config.toml` could name are pinned by environment.

use std::path::PathBuf;

use super::{Project, Sandboxing, TestConvention};
use crate::lockfile::{LockfileSettings, cargo};
use crate::verify::discover::{Command, Discovery, TestPlan};

/// Where the worker's registry configuration is read inside the sandbox.
const CONFIG: &str = "/tmp/remediator/cargo-config.toml";

fn discover(project: &Project<'_>) -> Discovery {
    let lockfiles = project.lockfiles;
    let command = |args: &[&str]| {
        let mut command = Command::new(&lockfiles.cargo, args);
        if lockfiles.cargo_config.is_some() {
            command
                .args
                .extend(["--config".to_owned(), CONFIG.to_owned()]);
        }
        command
    };
    let install = command(&["fetch", "--locked"]);
    let test = command(&["test", "--locked", "--offline", "--no-fail-fast"]);
    let source = format!("{} (cargo's test runner)", project.path("Cargo.lock"));
    Discovery::Found(TestPlan::new(
        &CARGO,
        project.dir,
        vec![install],
        test,
        source,
    ))
}

/// The toolchain of the worker's cargo (its `rustc` the one used), the registry configuration
/// and the local registries it names.
fn sandboxing(lockfiles: &LockfileSettings) -> Sandboxing {
    let toolchain = crate::sandbox::tools::locate(&lockfiles.cargo, cargo::INSTALL_HINT)
        .ok()
        .and_then(|tool| cargo::toolchain_root(&tool.path));
    let mut sandboxing = Sandboxing {
        read_only: toolchain.iter().cloned().collect(),
        files_at: lockfiles
            .cargo_config
            .iter()
            .map(|file| (file.clone(), CONFIG.to_owned()))
            .collect(),
        ..Sandboxing::default()
    };
    sandboxing
        .read_only
        .extend(lockfiles.cargo_registry_dirs.iter().map(PathBuf::from));
    // The lock step's pins (wrappers off, its rustc, cargo's own token provider); CARGO_HOME
    // is the run's kept directory instead (`kept`).
    sandboxing.env = cargo::env(toolchain.as_deref())
        .into_iter()
        .filter(|(key, _)| key != "CARGO_HOME")
        .collect();
    sandboxing
}

pub const CARGO: TestConvention = TestConvention {
    name: "cargo",
    lock_files: &["Cargo.lock"],
    discover,
    // The pins come with the sandboxing, from the lock step's own list.
    environment: &[],
    sandboxing,
    // What `cargo fetch` downloads is what the offline test run builds from.
    kept: &[("CARGO_HOME", ".remediator/cargo-home")],
};
