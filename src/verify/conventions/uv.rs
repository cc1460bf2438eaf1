//! uv: `uv sync --locked` (from `lockfiles.python_index`, or only the distributions of
//! `lockfiles.python_find_links`) then `uv run --no-sync pytest -rA` in the synced
//! environment, when `uv.lock` resolves pytest.

use std::path::PathBuf;

use super::{Project, Sandboxing, TestConvention, resolves_pytest};
use crate::lockfile::LockfileSettings;
use crate::verify::discover::{Command, Discovery, TestPlan};

fn discover(project: &Project<'_>) -> Discovery {
    let source = match resolves_pytest(project, "uv.lock") {
        Ok(source) => source,
        Err(why) => return Discovery::NotFound(why),
    };
    let lockfiles = project.lockfiles;
    let mut install = Command::new(&lockfiles.uv, &["sync", "--locked"]);
    if !lockfiles.python_index.is_empty() {
        install
            .args
            .extend(["--default-index".to_owned(), lockfiles.python_index.clone()]);
    }
    if !lockfiles.python_find_links.is_empty() {
        install.args.extend([
            "--no-index".to_owned(),
            "--find-links".to_owned(),
            lockfiles.python_find_links.clone(),
        ]);
    }
    // The environment is synced: no resolution, no network, in the run.
    let test = Command::new(&lockfiles.uv, &["run", "--no-sync", "pytest", "-rA"]);
    Discovery::Found(TestPlan::new(&UV, project.dir, vec![install], test, source))
}

/// A directory of distributions (an offline mirror) is read where it is.
pub fn find_links(lockfiles: &LockfileSettings) -> Sandboxing {
    Sandboxing {
        read_only: (!lockfiles.python_find_links.is_empty())
            .then(|| PathBuf::from(&lockfiles.python_find_links))
            .into_iter()
            .collect(),
        ..Sandboxing::default()
    }
}

pub const UV: TestConvention = TestConvention {
    name: "uv",
    lock_files: &["uv.lock"],
    discover,
    environment: &[
        ("UV_CACHE_DIR", "/tmp/uv-cache"),
        ("UV_PYTHON_DOWNLOADS", "never"),
        ("UV_NO_PROGRESS", "1"),
        // The cache lives in the run's /tmp and goes with it: copy, never link.
        ("UV_LINK_MODE", "copy"),
    ],
    sandboxing: find_links,
    kept: &[],
};
