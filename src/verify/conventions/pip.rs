//! Requirements files: a `requirements.txt` beside the change that names pytest. The worker's
//! `python3` makes a virtualenv in the project's `.venv`, its pip installs the requirements
//! (from `lockfiles.python_index`, or only the distributions of `lockfiles.python_find_links`),
//! then its `python -m pytest -rA` runs the tests.
//!
//! The virtualenv's commands run through `sh`, since a program is looked up on the worker
//! (where the tree's `.venv` is no tool); the interpreter it links to is bound read-only.

use std::path::{Path, PathBuf};

use super::{Project, Sandboxing, TestConvention};
use crate::lockfile::LockfileSettings;
use crate::verify::discover::{Command, Discovery, REPOSITORY_FILE, TestPlan};

const REQUIREMENTS: &str = "requirements.txt";
const PYTHON: &str = "python3";
const HINT: &str = "install Python 3 with its venv module (apt-get install python3-venv)";

/// `python -m MODULE ARGS...` of the project's virtualenv, through `sh`.
fn in_venv(module: &str, args: &[&str]) -> Command {
    let script = format!("exec .venv/bin/python -m {module} \"$@\"");
    let mut words = vec!["-c", &script, module];
    words.extend_from_slice(args);
    Command::new("sh", &words)
}

/// Whether a requirement line names `package` (any version specifier, extras or marker).
fn names(line: &str, package: &str) -> bool {
    let line = line.split('#').next().unwrap_or("").trim();
    let name: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect();
    name.to_ascii_lowercase().replace(['_', '.'], "-") == package
}

fn discover(project: &Project<'_>) -> Discovery {
    let path = project.path(REQUIREMENTS);
    let has_pytest = project
        .read(REQUIREMENTS)
        .is_some_and(|text| text.lines().any(|line| names(line, "pytest")));
    if !has_pytest {
        return Discovery::NotFound(format!(
            "no tests: {path} does not name pytest (set [test] in {REPOSITORY_FILE} for \
             another runner)"
        ));
    }
    let lockfiles = project.lockfiles;
    let mut pip = vec!["install", "--no-input", "-r", REQUIREMENTS];
    if !lockfiles.python_index.is_empty() {
        pip.extend(["--index-url", &lockfiles.python_index]);
    }
    if !lockfiles.python_find_links.is_empty() {
        pip.extend(["--no-index", "--find-links", &lockfiles.python_find_links]);
    }
    let install = vec![
        Command::new(PYTHON, &["-m", "venv", ".venv"]),
        in_venv("pip", &pip),
    ];
    let test = in_venv("pytest", &["-rA"]);
    let source = format!("{path} names pytest");
    Discovery::Found(TestPlan::new(&PIP, project.dir, install, test, source))
}

/// The interpreter the virtualenv links to (the real install behind the worker's `python3`),
/// and the offline mirror, read where they are.
fn sandboxing(lockfiles: &LockfileSettings) -> Sandboxing {
    let mut read_only = super::uv::find_links(lockfiles).read_only;
    let interpreter = crate::sandbox::tools::locate(PYTHON, HINT)
        .ok()
        .and_then(|tool| tool.path.canonicalize().ok());
    let prefix = interpreter
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::parent);
    read_only.extend(
        prefix
            .filter(|prefix| !prefix.starts_with("/usr"))
            .map(PathBuf::from),
    );
    Sandboxing {
        read_only,
        ..Sandboxing::default()
    }
}

pub const PIP: TestConvention = TestConvention {
    name: "pip",
    lock_files: &[REQUIREMENTS],
    discover,
    environment: &[
        ("PIP_CACHE_DIR", "/tmp/pip-cache"),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        ("PIP_NO_INPUT", "1"),
    ],
    sandboxing,
    kept: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requirement_names_its_package_whatever_follows() {
        for line in [
            "pytest",
            "pytest==8.3.2",
            "PyTest>=8 ; python_version>'3'",
            "pytest[testing]",
        ] {
            assert!(names(line, "pytest"), "{line}");
        }
        for line in ["pytest-cov==5.0", "# pytest", "-r dev.txt", "requests"] {
            assert!(!names(line, "pytest"), "{line}");
        }
    }
}
