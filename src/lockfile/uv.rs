//! uv: `uv.lock` (the workspace root's for a member) updated by `uv lock --upgrade-package
//! NAME==VERSION` after the `pyproject.toml` edit, and read back for every copy. uv never
//! downloads a Python here (`UV_PYTHON_DOWNLOADS=never`): it uses the system's, in the sandbox.

use std::path::{Path, PathBuf};

use super::{
    LockError, LockOutcome, LockTarget, LockfileSettings, Resolved, parent_dir, update_each_lock,
};
use crate::sandbox::{Sandbox, ToolRun};

const INSTALL_HINT: &str = "install uv (pip install uv) and set lockfiles.uv";

pub async fn update(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    target: &LockTarget<'_>,
) -> Result<LockOutcome, LockError> {
    let mut args = vec![
        "lock".to_owned(),
        "--upgrade-package".to_owned(),
        format!("{}=={}", target.package, target.target_version),
    ];
    if !settings.python_index.is_empty() {
        args.extend(["--default-index".to_owned(), settings.python_index.clone()]);
    }
    if !settings.python_find_links.is_empty() {
        args.extend([
            "--no-index".to_owned(),
            "--find-links".to_owned(),
            settings.python_find_links.clone(),
        ]);
    }
    let env = [
        ("UV_CACHE_DIR", "/tmp/uv-cache"),
        ("UV_PYTHON_DOWNLOADS", "never"),
        ("UV_NO_PROGRESS", "1"),
    ];
    let run_for = |lock: &str| {
        let mut run = ToolRun::networked(
            &settings.uv,
            args.clone(),
            work_tree,
            parent_dir(lock),
            &env,
        );
        if !settings.python_find_links.is_empty() {
            run.read_only
                .push(PathBuf::from(&settings.python_find_links));
        }
        run
    };
    let copies =
        |text: &str, lock: &str| Ok(copies(text, lock, target.package, target.target_version));
    let outcome = update_each_lock(
        sandbox,
        settings,
        work_tree,
        target,
        ("pyproject.toml", &["uv.lock"]),
        INSTALL_HINT,
        run_for,
        copies,
    )
    .await?;
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
