//! uv: `uv.lock` (the workspace root's for a member) updated by `uv lock --upgrade-package
//! NAME==VERSION` after the `pyproject.toml` edit, and read back for every copy. uv never
//! downloads a Python here (`UV_PYTHON_DOWNLOADS=never`): it uses the system's, in the sandbox.

use std::path::{Path, PathBuf};

use super::tool::{LockContext, LockFile, LockTool, Updated};
use super::{
    FixedVersions, LockError, LockTarget, LockfileSettings, Resolved, parent_dir, update_each_lock,
};
use crate::patch::bump::pep503_name;
use crate::sandbox::ToolRun;

pub(super) const INSTALL_HINT: &str = "install uv (pip install uv) and set lockfiles.uv";

/// uv's environment in the sandbox: its cache in the sandbox's `/tmp`, no Python download.
const ENV: [(&str, &str); 3] = [
    ("UV_CACHE_DIR", "/tmp/uv-cache"),
    ("UV_PYTHON_DOWNLOADS", "never"),
    ("UV_NO_PROGRESS", "1"),
];

pub async fn update(context: LockContext<'_>, target: &LockTarget<'_>) -> Updated {
    let (settings, work_tree) = (context.settings, context.work_tree);
    let upgrade = [format!("{}=={}", target.package, target.fixes.chosen())];
    let copies = |text: &str, lock: &str| Ok(copies(text, lock, target.package, target.fixes));
    let files = ("pyproject.toml", &["uv.lock"][..]);
    let updated = update_each_lock(
        context,
        target,
        files,
        INSTALL_HINT,
        |lock| lock_run(settings, work_tree, lock, &upgrade),
        copies,
    )
    .await;
    let outcome = match updated {
        // A dependent's requirement excludes the fix: the locks stay as they are, and the
        // lock step looks for an upgrade path.
        Err(LockError::Tool { output, .. })
            if target.lock_only && output.contains("No solution found") =>
        {
            super::read_back(work_tree, target, files, copies)?
        }
        updated => updated?,
    };
    Ok(outcome.finish("uv lock --upgrade-package"))
}

/// `uv lock --upgrade-package NAME==VERSION ...` for `lock` (each of `upgrades` is
/// `NAME==VERSION`).
pub(super) fn lock_run(
    settings: &LockfileSettings,
    work_tree: &Path,
    lock: &str,
    upgrades: &[String],
) -> ToolRun {
    let mut args = vec!["lock".to_owned()];
    for upgrade in upgrades {
        args.extend(["--upgrade-package".to_owned(), upgrade.clone()]);
    }
    resolver_run(settings, work_tree, parent_dir(lock), args, "")
}

/// A uv run in `dir` that resolves from the worker's index or find-links (`index`, when not
/// empty, replaces the worker's index: a Poetry project's own source).
pub fn resolver_run(
    settings: &LockfileSettings,
    work_tree: &Path,
    dir: &str,
    mut args: Vec<String>,
    index: &str,
) -> ToolRun {
    let index = if index.is_empty() {
        settings.python_index.as_str()
    } else {
        index
    };
    if !index.is_empty() {
        args.extend(["--default-index".to_owned(), index.to_owned()]);
    }
    if !settings.python_find_links.is_empty() {
        args.extend([
            "--no-index".to_owned(),
            "--find-links".to_owned(),
            settings.python_find_links.clone(),
        ]);
    }
    let mut run = ToolRun::networked(&settings.uv, args, work_tree, dir, &ENV);
    if !settings.python_find_links.is_empty() {
        run.read_only
            .push(PathBuf::from(&settings.python_find_links));
    }
    run
}

/// Every copy of the package in a `uv.lock` or `poetry.lock` (the same `[[package]]` form).
pub fn copies(text: &str, lock: &str, package: &str, fixes: &FixedVersions) -> Vec<Resolved> {
    let wanted = pep503_name(package);
    super::toml_lock_copies(text, lock, fixes, |name| pep503_name(name) == wanted)
}

/// uv: `uv.lock`.
pub const TOOL: LockTool = LockTool {
    name: "uv",
    lock_files: &[LockFile::beside("uv.lock", "pyproject.toml", copies)],
    update: |context, target| Box::pin(update(context, target)),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::reader_cases::check;

    #[test]
    fn names_are_matched_as_pep_503_normalises_them() {
        let lock = "version = 1\n\n[[package]]\nname = \"py-yaml\"\nversion = \"5.3\"\nsource = { registry = \"x\" }\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n";
        check(
            copies,
            "uv.lock",
            &[(lock, "Py_YAML", "5.4", &[("5.3", true)])],
        );
        assert_eq!(pep503_name("Foo__Bar.baz"), "foo-bar-baz");
    }
}
