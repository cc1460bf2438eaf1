//! npm, pnpm and yarn 1: a `scripts.test` in `package.json` (not npm's placeholder that exits
//! 1), after the lock's frozen install (`npm ci`, `pnpm install --frozen-lockfile`, `yarn
//! install --frozen-lockfile`) from `lockfiles.npm_registry` when one is set. Install scripts
//! run, in the sandbox, since native modules need them. pnpm runs the release the project asks
//! for ([`with_requested_release`]).

use std::path::Path;

use super::{Project, TestConvention, nothing};
use crate::lockfile::{self, LockError, LockfileSettings};
use crate::sandbox::Sandbox;
use crate::verify::discover::{Command, Discovery, REPOSITORY_FILE, TestPlan};

/// npm's `scripts.test` when `npm init` wrote it: no tests.
const NPM_PLACEHOLDER: &str = "no test specified";

/// Caches in the run's `/tmp`, no update notices, no funding or audit requests.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("npm_config_cache", "/tmp/npm-cache"),
    ("npm_config_update_notifier", "false"),
    ("npm_config_fund", "false"),
    ("npm_config_audit", "false"),
    ("YARN_CACHE_FOLDER", "/tmp/yarn-cache"),
];

/// Where the project's `scripts.test` is when it is a real one, else why no test runs.
fn test_script(project: &Project<'_>) -> Result<String, String> {
    let manifest = project.path("package.json");
    let script = project
        .read("package.json")
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["scripts"]["test"].as_str().map(str::to_owned));
    match script {
        Some(script) if !script.contains(NPM_PLACEHOLDER) && !script.trim().is_empty() => {
            Ok(format!("{manifest} scripts.test"))
        }
        Some(_) => Err(format!(
            "no tests: {manifest} has npm's placeholder test script"
        )),
        None => Err(format!("no tests: {manifest} has no scripts.test")),
    }
}

/// The plan of `convention` run by `tool`: `install` (then the registry) and `test`.
fn plan(
    project: &Project<'_>,
    convention: &'static TestConvention,
    tool: &str,
    install: &[&str],
) -> Discovery {
    let source = match test_script(project) {
        Ok(source) => source,
        Err(why) => return Discovery::NotFound(why),
    };
    let mut install = Command::new(tool, install);
    let registry = &project.lockfiles.npm_registry;
    if !registry.is_empty() {
        install.args.push(format!("--registry={registry}"));
    }
    let test = Command::new(tool, &["test"]);
    Discovery::Found(TestPlan::new(
        convention,
        project.dir,
        vec![install],
        test,
        source,
    ))
}

pub const NPM: TestConvention = TestConvention {
    name: "npm",
    lock_files: &["package-lock.json", "npm-shrinkwrap.json"],
    discover: |project| {
        let npm = &project.lockfiles.npm;
        plan(project, &NPM, npm, &["ci", "--no-audit", "--no-fund"])
    },
    environment: ENVIRONMENT,
    sandboxing: nothing,
    kept: &[],
};

pub const PNPM: TestConvention = TestConvention {
    name: "pnpm",
    lock_files: &["pnpm-lock.yaml"],
    discover: |project| {
        let pnpm = &project.lockfiles.pnpm;
        plan(project, &PNPM, pnpm, &["install", "--frozen-lockfile"])
    },
    environment: ENVIRONMENT,
    sandboxing: nothing,
    kept: &[],
};

pub const YARN: TestConvention = TestConvention {
    name: "yarn",
    lock_files: &["yarn.lock"],
    discover: |project| {
        let berry = project
            .read("yarn.lock")
            .is_some_and(|text| text.contains("__metadata"));
        if berry {
            return Discovery::NotFound(format!(
                "no test command found for yarn 2+ (Berry) projects yet (set [test] in \
                 {REPOSITORY_FILE})"
            ));
        }
        let yarn = &project.lockfiles.yarn;
        plan(project, &YARN, yarn, &["install", "--frozen-lockfile"])
    },
    environment: ENVIRONMENT,
    sandboxing: nothing,
    kept: &[],
};

/// `plan` with its pnpm commands run by the pnpm the project asks for (its `packageManager`,
/// else the major its lock's `lockfileVersion` needs), as the lock step ran it, when the
/// worker's own pnpm is not that one.
pub async fn with_requested_release(
    sandbox: &Sandbox,
    lockfiles: &LockfileSettings,
    plan: TestPlan,
    tree: &Path,
) -> Result<TestPlan, LockError> {
    use crate::lockfile::package_manager;
    if *plan.convention != PNPM || plan.install.is_empty() {
        return Ok(plan);
    }
    let lock = lockfile::join(&plan.dir, "pnpm-lock.yaml");
    let lock_text = crate::lockfile::repo_file::read(tree, &lock).unwrap_or_default();
    let wanted = package_manager::from_manifest(tree, &plan.dir, "pnpm")
        .or_else(|| package_manager::pnpm_major_for_lock(&lock_text, &lock));
    let Some(wanted) = wanted else {
        return Ok(plan);
    };
    let own = package_manager::worker_version(sandbox, &lockfiles.pnpm).await;
    if package_manager::satisfied_by(&wanted, own.as_deref()) {
        return Ok(plan);
    }
    let release = package_manager::provide(sandbox, lockfiles, &wanted).await?;
    Ok(TestPlan {
        install: plan.install.iter().map(|c| c.run_by(&release)).collect(),
        test: plan.test.run_by(&release),
        ..plan
    })
}
