//! Poetry: `poetry.lock` beside the edited `pyproject.toml`, updated by `poetry update NAME
//! --lock` (the lock alone, and of it only the package and what it needs: every other locked
//! version stays), then read back for every copy. Poetry resolves from the sources the project
//! declares; building an sdist to read its metadata runs the package's code, in the sandbox.

use std::path::Path;

use super::{
    LockError, LockOutcome, LockTarget, LockfileSettings, covering_locks, parent_dir, read,
};
use super::{record, run_tool, uv};
use crate::sandbox::{Sandbox, ToolRun};

pub const LOCK_FILE: &str = "poetry.lock";
const INSTALL_HINT: &str = "install Poetry (pip install poetry) and set lockfiles.poetry";

pub async fn update(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    target: &LockTarget<'_>,
) -> Result<LockOutcome, LockError> {
    let locks = covering_locks(work_tree, target, "pyproject.toml", &[LOCK_FILE]);
    let mut outcome = LockOutcome::default();
    for lock in &locks {
        let before = read(work_tree, lock)?;
        let run = ToolRun {
            program: settings.poetry.clone(),
            args: [
                "update",
                target.package,
                "--lock",
                "--no-interaction",
                "--no-ansi",
            ]
            .map(str::to_owned)
            .to_vec(),
            work_tree: work_tree.to_path_buf(),
            dir: parent_dir(lock).to_owned(),
            env: [
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
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec(),
            network: true,
            secrets: Vec::new(),
            read_only: Vec::new(),
            files_at: Vec::new(),
        };
        run_tool(sandbox, settings, &run, INSTALL_HINT, lock).await?;
        let resolved = |text: &str| {
            Ok(uv::copies(
                text,
                lock,
                target.package,
                target.target_version,
            ))
        };
        record(work_tree, lock, &before, resolved, &mut outcome)?;
    }
    Ok(outcome.finish("poetry update --lock"))
}
