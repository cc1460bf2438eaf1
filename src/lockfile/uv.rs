//! uv: `uv.lock` (the workspace root's for a member) updated by `uv lock --upgrade-package
//! NAME==VERSION` after the `pyproject.toml` edit, and read back for every copy. uv never
//! downloads a Python here (`UV_PYTHON_DOWNLOADS=never`): it uses the system's, in the sandbox.

use std::path::{Path, PathBuf};

use super::{
    LockError, LockOutcome, LockTarget, LockfileSettings, Resolved, covering_locks, parent_dir,
    read,
};
use super::{record, run_tool};
use crate::sandbox::{Sandbox, ToolRun};

const INSTALL_HINT: &str = "install uv (pip install uv) and set lockfiles.uv";

pub async fn update(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    target: &LockTarget<'_>,
) -> Result<LockOutcome, LockError> {
    let locks = covering_locks(work_tree, target, "pyproject.toml", &["uv.lock"]);
    let mut outcome = LockOutcome::default();
    for lock in &locks {
        let before = read(work_tree, lock)?;
        let mut args = vec![
            "lock".to_owned(),
            "--upgrade-package".to_owned(),
            format!("{}=={}", target.package, target.target_version),
        ];
        let env = vec![
            ("UV_CACHE_DIR".to_owned(), "/tmp/uv-cache".to_owned()),
            ("UV_PYTHON_DOWNLOADS".to_owned(), "never".to_owned()),
            ("UV_NO_PROGRESS".to_owned(), "1".to_owned()),
        ];
        let mut read_only = Vec::new();
        if !settings.python_index.is_empty() {
            args.extend(["--default-index".to_owned(), settings.python_index.clone()]);
        }
        if !settings.python_find_links.is_empty() {
            args.extend([
                "--no-index".to_owned(),
                "--find-links".to_owned(),
                settings.python_find_links.clone(),
            ]);
            read_only.push(PathBuf::from(&settings.python_find_links));
        }
        let run = ToolRun {
            program: settings.uv.clone(),
            args: args.clone(),
            work_tree: work_tree.to_path_buf(),
            dir: parent_dir(lock).to_owned(),
            env,
            network: true,
            secrets: Vec::new(),
            read_only,
            files_at: Vec::new(),
        };
        run_tool(sandbox, settings, &run, INSTALL_HINT, lock).await?;
        let resolved = |text: &str| Ok(copies(text, lock, target.package, target.target_version));
        record(work_tree, lock, &before, resolved, &mut outcome)?;
    }
    Ok(outcome.finish("uv lock --upgrade-package"))
}

/// Every copy of the package in a `uv.lock` or `poetry.lock` (the same `[[package]]` form).
pub fn copies(text: &str, lock: &str, package: &str, target_version: &str) -> Vec<Resolved> {
    let wanted = super::pep503_name(package);
    super::toml_lock_copies(text, lock, target_version, |name| {
        super::pep503_name(name) == wanted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_as_pep_503_normalises_them() {
        let lock = "version = 1\n\n[[package]]\nname = \"py-yaml\"\nversion = \"5.3\"\nsource = { registry = \"x\" }\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n";
        let found = copies(lock, "uv.lock", "Py_YAML", "5.4");
        assert_eq!(found.len(), 1);
        assert!(found[0].vulnerable);
        assert_eq!(super::super::pep503_name("Foo__Bar.baz"), "foo-bar-baz");
    }
}
