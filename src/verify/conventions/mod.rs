//! One shape for every test convention. A [`TestConvention`] is data: its name (as
//! `verify.commands.NAME` and the report spell it), the lock files that mark a project of its
//! kind, how it finds the commands of such a project, the environment its runs get, and what
//! of the worker its runs need to read (a toolchain, a local mirror). [`ALL`] is the one place
//! that lists them, in the order a project's lock files are looked for.
//!
//! Adding a test convention is one file (its `discover`, ending with its [`TestConvention`]
//! constant) and one line in [`ALL`].

pub mod cargo;
pub mod go;
pub mod js;
pub mod pip;
pub mod poetry;
pub mod uv;

use std::path::{Path, PathBuf};

use super::discover::{Discovery, REPOSITORY_FILE};
use crate::lockfile::{LockfileSettings, join, repo_file};

/// The project a convention looks at: the default branch's tree, the project's directory in
/// it, and the lock settings (the tools and registries the worker uses).
#[derive(Clone, Copy)]
pub struct Project<'a> {
    pub root: &'a Path,
    pub dir: &'a str,
    pub lockfiles: &'a LockfileSettings,
}

impl Project<'_> {
    /// `file` of the project's directory, relative to the tree's root.
    pub fn path(&self, file: &str) -> String {
        join(self.dir, file)
    }

    /// The text of `file` of the project's directory, if it is there.
    pub fn read(&self, file: &str) -> Option<String> {
        repo_file::read(self.root, self.path(file)).ok()
    }
}

/// What a run needs beyond its command and the convention's fixed environment, read from the
/// worker's settings and tools when the plan is made (a toolchain's root, a configuration file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandboxing {
    pub env: Vec<(String, String)>,
    /// Paths of the worker's bound read-only where they are.
    pub read_only: Vec<PathBuf>,
    /// Files of the worker's read at a path of their own inside: (host file, path inside).
    pub files_at: Vec<(PathBuf, String)>,
}

/// One test convention; see the module documentation.
pub struct TestConvention {
    /// The kind of project, as `verify.commands.NAME` and messages name it.
    pub name: &'static str,
    /// The files that mark a project of this kind (empty: none, for [`OTHER`]).
    pub lock_files: &'static [&'static str],
    /// The commands of a project of this kind, or why there are none.
    pub discover: fn(&Project<'_>) -> Discovery,
    /// The environment of every run besides `CI=true`: caches in the sandbox's fresh `/tmp`, no
    /// update checks, no prompts.
    pub environment: &'static [(&'static str, &'static str)],
    /// What runs need of the worker's besides the program (see [`Sandboxing`]).
    pub sandboxing: fn(&LockfileSettings) -> Sandboxing,
    /// Variables naming a directory the install fills and the tests read (a module cache):
    /// (variable, directory relative to the project's), made absolute where the run sees the
    /// tree. Each run has a fresh `/tmp`, so what must outlast the install is in the tree.
    pub kept: &'static [(&'static str, &'static str)],
}

impl std::fmt::Debug for TestConvention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Conventions are one constant each: the same name is the same convention.
impl PartialEq for TestConvention {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TestConvention {}

/// Every convention, in the order a project's lock files are looked for.
pub const ALL: &[&TestConvention] = &[
    &js::NPM,
    &js::PNPM,
    &js::YARN,
    &uv::UV,
    &poetry::POETRY,
    &cargo::CARGO,
    &go::GO,
    &pip::PIP,
];

/// A repository's or the fleet's own commands for a project of no known kind.
pub const OTHER: TestConvention = TestConvention {
    name: "other",
    lock_files: &[],
    discover: |_| not_known("other"),
    environment: &[],
    sandboxing: nothing,
    kept: &[],
};

/// The convention of the project in `dir` of the tree at `root`, by its lock file.
pub fn of(root: &Path, dir: &str) -> Option<&'static TestConvention> {
    ALL.iter().copied().find(|convention| {
        convention
            .lock_files
            .iter()
            .any(|file| repo_file::is_file(root, join(dir, file)))
    })
}

/// The lock files that name a kind, for the message that finds none.
pub fn known_lock_files() -> Vec<&'static str> {
    ALL.iter()
        .flat_map(|convention| convention.lock_files.iter().copied())
        .collect()
}

/// A kind of project with no test convention yet.
fn not_known(name: &str) -> Discovery {
    Discovery::NotFound(format!(
        "no test command found for {name} projects yet (set [test] in {REPOSITORY_FILE}, or \
         verify.commands.{name})"
    ))
}

/// Nothing beyond the command and the environment.
pub fn nothing(_: &LockfileSettings) -> Sandboxing {
    Sandboxing::default()
}

/// Whether the lock file `lock` of the project resolves pytest (`name = "pytest"`, as uv's and
/// Poetry's TOML locks write a package): the plan's source if so, else why no test runs.
pub fn resolves_pytest(project: &Project<'_>, lock: &str) -> Result<String, String> {
    let path = project.path(lock);
    let resolves = project
        .read(lock)
        .is_some_and(|text| text.lines().any(|line| line.trim() == "name = \"pytest\""));
    match resolves {
        true => Ok(format!("{path} resolves pytest")),
        false => Err(format!(
            "no tests: {path} does not resolve pytest (set [test] in {REPOSITORY_FILE} for \
             another runner)"
        )),
    }
}
