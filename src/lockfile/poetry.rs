//! Poetry: `poetry.lock` beside the edited `pyproject.toml`, updated by `poetry update NAME
//! --lock` (the lock alone, and of it only the package and what it needs: every other locked
//! version stays), then read back for every copy. Poetry resolves from the sources the project
//! declares; building an sdist to read its metadata runs the package's code, in the sandbox.

use std::path::Path;

use super::tool::{LockContext, LockFile, LockTool, Updated};
use super::{LockTarget, LockfileSettings, parent_dir, update_each_lock, uv};
use crate::sandbox::ToolRun;

pub const LOCK_FILE: &str = "poetry.lock";
pub(super) const INSTALL_HINT: &str =
    "install Poetry (pip install poetry) and set lockfiles.poetry";

pub async fn update(context: LockContext<'_>, target: &LockTarget<'_>) -> Updated {
    let (settings, work_tree) = (context.settings, context.work_tree);
    let run_for = |lock: &str| update_run(settings, work_tree, lock, &[target.package]);
    let copies = |text: &str, lock: &str| Ok(uv::copies(text, lock, target.package, target.fixes));
    let outcome = update_each_lock(
        context,
        target,
        ("pyproject.toml", &[LOCK_FILE]),
        INSTALL_HINT,
        run_for,
        copies,
    )
    .await?;
    Ok(outcome.finish("poetry update --lock"))
}

/// `poetry update NAME... --lock` for `lock`.
pub(super) fn update_run(
    settings: &LockfileSettings,
    work_tree: &Path,
    lock: &str,
    packages: &[&str],
) -> ToolRun {
    let mut args = vec!["update".to_owned()];
    args.extend(packages.iter().map(|p| (*p).to_owned()));
    args.extend(["--lock", "--no-interaction", "--no-ansi"].map(str::to_owned));
    ToolRun::networked(&settings.poetry, args, work_tree, parent_dir(lock), &ENV)
}

const ENV: [(&str, &str); 9] = [
    ("POETRY_CACHE_DIR", "/tmp/poetry-cache"),
    ("POETRY_CONFIG_DIR", "/tmp/poetry-config"),
    ("POETRY_DATA_DIR", "/tmp/poetry-data"),
    ("POETRY_VIRTUALENVS_PATH", "/tmp/poetry-venvs"),
    ("POETRY_VIRTUALENVS_IN_PROJECT", "false"),
    ("POETRY_NO_INTERACTION", "1"),
    // No keyring daemon in the sandbox: asking one would hang or fail.
    ("POETRY_KEYRING_ENABLED", "false"),
    ("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring"),
    ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
];

/// Poetry: `poetry.lock` (read as uv reads its TOML lock).
pub const TOOL: LockTool = LockTool {
    name: "poetry",
    lock_files: &[LockFile::beside(LOCK_FILE, "pyproject.toml", uv::copies)],
    update: |context, target| Box::pin(update(context, target)),
};
