//! Poetry: `poetry install --no-interaction` (the locked environment, in a virtualenv in the
//! project's `.venv`) then `poetry run pytest -rA`, when `poetry.lock` resolves pytest. Poetry
//! installs from the sources the project declares, as its lock step resolves from them.

use super::{Project, TestConvention, nothing, resolves_pytest};
use crate::verify::discover::{Command, Discovery, TestPlan};

fn discover(project: &Project<'_>) -> Discovery {
    let source = match resolves_pytest(project, "poetry.lock") {
        Ok(source) => source,
        Err(why) => return Discovery::NotFound(why),
    };
    let poetry = &project.lockfiles.poetry;
    let install = Command::new(poetry, &["install", "--no-interaction"]);
    let test = Command::new(poetry, &["run", "pytest", "-rA"]);
    Discovery::Found(TestPlan::new(
        &POETRY,
        project.dir,
        vec![install],
        test,
        source,
    ))
}

pub const POETRY: TestConvention = TestConvention {
    name: "poetry",
    lock_files: &["poetry.lock"],
    discover,
    environment: &[
        ("POETRY_CACHE_DIR", "/tmp/poetry-cache"),
        ("POETRY_CONFIG_DIR", "/tmp/poetry-config"),
        ("POETRY_DATA_DIR", "/tmp/poetry-data"),
        // In the tree, so the test run (a sandbox of its own) finds what the install put there.
        ("POETRY_VIRTUALENVS_IN_PROJECT", "true"),
        ("POETRY_NO_INTERACTION", "1"),
        // No keyring daemon in the sandbox: asking one would hang or fail.
        ("POETRY_KEYRING_ENABLED", "false"),
        ("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring"),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    ],
    sandboxing: nothing,
    kept: &[],
};
