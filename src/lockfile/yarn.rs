//! yarn: `yarn.lock` (the workspace root's for a member), read back for every copy of the
//! package.
//!
//! - yarn 1 (classic) has no lock-only mode, so `yarn install --ignore-scripts` runs with its
//!   `node_modules` and cache in the sandbox's fresh `/tmp`: the clone gets only the new lock.
//!   `YARN_IGNORE_PATH` keeps a repository's `.yarnrc` from naming another yarn to run.
//! - yarn Berry (2+, a lock with `__metadata`) runs the release the repository commits
//!   (`.yarnrc.yml` `yarnPath`), with `install --mode=update-lockfile` (no link step), or
//!   `up -R NAME --mode=update-lockfile` for a transitive package, scripts off and its cache
//!   in `/tmp`. That release is repository code: it runs only in the sandbox,
//!   like every tool here. A project that commits none runs the release its `packageManager`
//!   names (`package_manager`: fetched from the npm registry into the worker's tool cache).

use std::path::Path;

use super::tool::{LockContext, LockFile, LockTool, Updated};
use super::{
    FixedVersions, LockError, LockOutcome, LockTarget, LockfileSettings, Resolved, covering_locks,
    join, parent_dir, read,
};
use super::{package_manager, record, run_tool};
use crate::sandbox::ToolRun;

pub const LOCK_FILE: &str = "yarn.lock";
const INSTALL_HINT: &str = "install yarn 1 (npm install -g yarn) and set lockfiles.yarn";
const NODE_HINT: &str = "install Node.js (apt-get install nodejs)";

pub async fn update(context: LockContext<'_>, target: &LockTarget<'_>) -> Updated {
    let work_tree = context.work_tree;
    let locks = covering_locks(work_tree, target, "package.json", &[LOCK_FILE]);
    let mut outcome = LockOutcome::default();
    let mut tools = Vec::new();
    for lock in &locks {
        let before = read(work_tree, lock)?;
        let (run, tool, hint) = match is_berry(&before) {
            true => berry_update(context, target, lock).await?,
            false => classic_update(context, target, lock, &before)?,
        };
        run_tool(context.sandbox, context.settings, &run, hint, lock).await?;
        let resolved = |text: &str| Ok(copies(text, lock, target.package, target.fixes));
        record(work_tree, lock, &before, resolved, &mut outcome)?;
        tools.push(tool);
    }
    tools.dedup();
    Ok(outcome.finish(&tools.join(", ")))
}

/// A yarn run that updates `lock`, what the verification calls it, and the install hint.
type YarnRun = (ToolRun, &'static str, &'static str);

/// The Berry run for `lock`: the committed release, else the one `packageManager` names.
async fn berry_update(
    context: LockContext<'_>,
    target: &LockTarget<'_>,
    lock: &str,
) -> Result<YarnRun, LockError> {
    let (settings, work_tree) = (context.settings, context.work_tree);
    let dir = parent_dir(lock);
    // A transitive package: `up -R` drops every resolution of the package and resolves its
    // ranges again (newest first), keeping every other entry; it never edits a manifest. It
    // takes names, not ranges: the dependents' ranges decide.
    let (command, tool): (&[&str], _) = match target.lock_only {
        true => (
            &["up", "-R", target.package, "--mode=update-lockfile"],
            "yarn up -R --mode=update-lockfile",
        ),
        false => (
            &["install", "--mode=update-lockfile"],
            "yarn install --mode=update-lockfile",
        ),
    };
    // No committed release: the one `packageManager` names, from the tool cache.
    let committed = committed_release(work_tree, dir);
    let provided = match committed {
        Some(_) => None,
        None => match package_manager::from_manifest(work_tree, dir, "yarn")
            .filter(|wanted| wanted.major() >= 2)
        {
            Some(wanted) => {
                Some(package_manager::provide(context.sandbox, settings, &wanted).await?)
            }
            None => None,
        },
    };
    let run = berry_run(settings, work_tree, dir, lock, command, provided.as_ref())?;
    Ok((run, tool, NODE_HINT))
}

/// The yarn 1 run for `lock` (its text `before`).
fn classic_update(
    context: LockContext<'_>,
    target: &LockTarget<'_>,
    lock: &str,
    before: &str,
) -> Result<YarnRun, LockError> {
    // yarn 1 moves a transitive package only when its entries are gone from the lock: the
    // install then resolves it again, newest first, within its dependents' ranges, and keeps
    // every other entry.
    let tool = if target.lock_only {
        let without = without_entries(before, target.package);
        std::fs::write(context.work_tree.join(lock), without).map_err(|e| LockError::Read {
            path: lock.to_owned(),
            message: format!("writing: {e}"),
        })?;
        "yarn install --ignore-scripts (the package's entries resolved again)"
    } else {
        "yarn install --ignore-scripts"
    };
    let run = classic_run(context.settings, context.work_tree, parent_dir(lock));
    Ok((run, tool, INSTALL_HINT))
}

/// The release a project's `.yarnrc.yml` in `dir` commits (`yarnPath`).
fn committed_release(work_tree: &Path, dir: &str) -> Option<String> {
    let rc = join(dir, ".yarnrc.yml");
    crate::lockfile::repo_file::read(work_tree, &rc)
        .ok()
        .and_then(|text| yarn_path(&text))
}

fn is_berry(lock: &str) -> bool {
    lock.lines().any(|line| line.trim_end() == "__metadata:")
}

fn classic_run(settings: &LockfileSettings, work_tree: &Path, dir: &str) -> ToolRun {
    let mut args: Vec<String> = [
        "install",
        "--ignore-scripts",
        "--ignore-engines",
        "--non-interactive",
        "--no-progress",
        "--modules-folder",
        "/tmp/yarn-node-modules",
        "--cache-folder",
        "/tmp/yarn-cache",
    ]
    .map(str::to_owned)
    .to_vec();
    if !settings.npm_registry.is_empty() {
        args.extend(["--registry".to_owned(), settings.npm_registry.clone()]);
    }
    let env = [
        ("YARN_IGNORE_PATH", "1"),
        ("YARN_IGNORE_SCRIPTS", "true"),
        ("npm_config_ignore_scripts", "true"),
        ("YARN_ENABLE_TELEMETRY", "0"),
    ];
    ToolRun::networked(&settings.yarn, args, work_tree, dir, &env)
}

/// A Berry run: the release the repository commits (`yarnPath`), else `provided` (the one its
/// `packageManager` names, from the tool cache).
fn berry_run(
    settings: &LockfileSettings,
    work_tree: &Path,
    dir: &str,
    lock: &str,
    command: &[&str],
    provided: Option<&package_manager::Provided>,
) -> Result<ToolRun, LockError> {
    let rc = join(dir, ".yarnrc.yml");
    let (inside, read_only) = match (committed_release(work_tree, dir), provided) {
        (Some(release), _) => {
            // The release must stay inside the clone: `..` or an absolute path would run a
            // file of the worker's instead.
            if release.starts_with('/') || release.split('/').any(|part| part == "..") {
                return Err(LockError::Unsupported(format!(
                    "{rc} names a yarnPath outside the repository ({release})"
                )));
            }
            (
                Path::new(crate::sandbox::CLONE).join(dir).join(&release),
                None,
            )
        }
        (None, Some(provided)) => (provided.script.clone(), Some(provided.root.clone())),
        (None, None) => {
            return Err(LockError::Unsupported(format!(
                "{lock} is a yarn Berry lock, and neither {rc} (yarnPath) nor package.json \
                 (packageManager) names the yarn release to run"
            )));
        }
    };
    let mut env: Vec<(String, String)> = [
        ("YARN_ENABLE_SCRIPTS", "0"),
        ("YARN_ENABLE_GLOBAL_CACHE", "0"),
        ("YARN_CACHE_FOLDER", "/tmp/yarn-cache"),
        ("YARN_ENABLE_TELEMETRY", "0"),
        ("YARN_ENABLE_IMMUTABLE_INSTALLS", "0"),
        ("YARN_ENABLE_PROGRESS_BARS", "0"),
        // Worker threads refuse the Wasm flag below: unzip on the main thread.
        ("YARN_TASK_POOL_MODE", "async"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    if !settings.npm_registry.is_empty() {
        env.push((
            "YARN_NPM_REGISTRY_SERVER".to_owned(),
            settings.npm_registry.trim_end_matches('/').to_owned(),
        ));
    }
    let mut args = vec![
        // Wasm's guard regions reserve more address space than the sandbox's limit allows
        // (Berry unzips with Wasm); without them bounds are checked in code instead.
        "--disable-wasm-trap-handler".to_owned(),
        inside.to_string_lossy().into_owned(),
    ];
    args.extend(command.iter().map(|arg| (*arg).to_owned()));
    let mut run = ToolRun::networked("node", args, work_tree, dir, &[]);
    run.env = env;
    run.read_only.extend(read_only);
    Ok(run)
}

/// A yarn 1 lock without the entries of `package` (blocks are separated by blank lines and
/// headed by their specifiers).
fn without_entries(lock: &str, package: &str) -> String {
    let ours = |block: &str| {
        block
            .lines()
            .find(|line| !line.trim().is_empty())
            .and_then(|header| header.trim_end().strip_suffix(':'))
            .is_some_and(|header| {
                !header.starts_with('#')
                    && header
                        .split(", ")
                        .map(|spec| spec.trim().trim_matches('"'))
                        .any(|spec| spec_name(spec) == package)
            })
    };
    lock.split("\n\n")
        .filter(|block| !ours(block))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `yarnPath: .yarn/releases/yarn-4.1.0.cjs` of a `.yarnrc.yml`.
fn yarn_path(rc: &str) -> Option<String> {
    rc.lines().find_map(|line| {
        let value = line.strip_prefix("yarnPath:")?;
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Every version of `package` the lock resolves: entries are headed by their specifiers
/// (`"lodash@^4.17.21", lodash@4.17.20:` in yarn 1, `"lodash@npm:^4.17.21":` in Berry) and
/// carry a `version "4.17.21"` (yarn 1) or `version: 4.17.21` (Berry) line.
pub fn copies(text: &str, lock: &str, package: &str, fixes: &FixedVersions) -> Vec<Resolved> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            current = None;
            let Some(header) = line.trim_end().strip_suffix(':') else {
                continue;
            };
            if header.starts_with('#') || header == "__metadata" {
                continue;
            }
            let ours = header
                .split(", ")
                .map(|spec| spec.trim().trim_matches('"'))
                .any(|spec| spec_name(spec) == package);
            if ours {
                current = Some(header.to_owned());
            }
        } else if let Some(header) = &current
            && let Some(version) = line
                .trim()
                .strip_prefix("version ")
                .or_else(|| line.trim().strip_prefix("version: "))
        {
            let version = version.trim().trim_matches('"').to_owned();
            found.push(Resolved {
                path: format!("{lock}: {header}"),
                vulnerable: fixes.is_vulnerable(&version),
                version,
            });
            current = None;
        }
    }
    found
}

/// `lodash` of `lodash@^4.17.21`, `@scope/pkg` of `@scope/pkg@npm:1.0.0`.
pub(super) fn spec_name(spec: &str) -> &str {
    match spec[1.min(spec.len())..].find('@') {
        Some(at) => &spec[..at + 1],
        None => spec,
    }
}

/// yarn 1 and Berry: `yarn.lock`.
pub const TOOL: LockTool = LockTool {
    name: "yarn",
    lock_files: &[LockFile::beside(LOCK_FILE, "package.json", copies)],
    update: |context, target| Box::pin(update(context, target)),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::reader_cases::{Case, check};

    const CLASSIC: &str = "# yarn lockfile v1\n\n\n\"lodash@^4.17.20\", lodash@4.17.20:\n  version \"4.17.20\"\n  resolved \"http://registry.invalid/lodash/-/lodash-4.17.20.tgz\"\n\nlodash.merge@^4.6.2:\n  version \"4.6.2\"\n\nold@1.0.0:\n  version \"1.0.0\"\n  dependencies:\n    lodash \"4.17.15\"\n\nlodash@4.17.15:\n  version \"4.17.15\"\n";
    const BERRY: &str = "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n\"@scope/pkg@npm:^2.0.0\":\n  version: 2.0.1\n  resolution: \"@scope/pkg@npm:2.0.1\"\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n";

    #[test]
    fn classic_and_berry_locks_name_every_copy() {
        const CASES: &[Case] = &[
            (
                CLASSIC,
                "lodash",
                "4.17.21",
                &[("4.17.20", true), ("4.17.15", true)],
            ),
            (BERRY, "@scope/pkg", "2.0.1", &[("2.0.1", false)]),
        ];
        check(copies, LOCK_FILE, CASES);
        let found = copies(
            CLASSIC,
            LOCK_FILE,
            "lodash",
            &FixedVersions::single("4.17.21"),
        );
        assert_eq!(found[1].path, "yarn.lock: lodash@4.17.15");
        assert!(is_berry(BERRY) && !is_berry(CLASSIC));
    }

    #[test]
    fn a_packages_entries_are_dropped_and_every_other_kept() {
        let lock = "# yarn lockfile v1\n\n\nlodash@^4.17.20:\n  version \"4.17.20\"\n\nlodash.merge@^4.6.2:\n  version \"4.6.2\"\n\nparent@^1.0.0:\n  version \"1.0.0\"\n  dependencies:\n    lodash \"^4.17.20\"\n";
        assert_eq!(
            without_entries(lock, "lodash"),
            // (yarn writes the whole file again after the install, blank lines included)
            "# yarn lockfile v1\n\nlodash.merge@^4.6.2:\n  version \"4.6.2\"\n\nparent@^1.0.0:\n  version \"1.0.0\"\n  dependencies:\n    lodash \"^4.17.20\"\n"
        );
    }

    #[test]
    fn a_berry_release_is_named_by_the_rc_file() {
        assert_eq!(
            yarn_path("nodeLinker: node-modules\nyarnPath: .yarn/releases/yarn-4.1.0.cjs\n")
                .as_deref(),
            Some(".yarn/releases/yarn-4.1.0.cjs")
        );
        assert_eq!(yarn_path("nodeLinker: pnp\n"), None);
    }
}
