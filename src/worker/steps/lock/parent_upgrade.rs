//! The lock step's upgrade path, for a transitive package its dependents hold below the fix:
//! the parents to move come from [`lockfile::npm_upgrade`] (npm, pnpm and yarn: the project's
//! own dependency, in its major), [`lockfile::cargo_upgrade`] (Cargo, several levels) and
//! [`lockfile::python_upgrade`] (uv and Poetry, the project's own dependency); a parent the
//! project declares is bumped (range style kept), the ecosystem's tool moves the parents and
//! the package, and the locks are read back. What the project's files were is put back when
//! the path does not work out, and the job then says which parent blocks the fix and what
//! would unblock it.

use crate::ecosystem::Ecosystem;
use std::path::Path;

use super::{Locked, STEP, relock};
use crate::db::models::RemediationTarget;
use crate::lockfile::overrides::Manager;
use crate::lockfile::transitive::LockedCopies;
use crate::lockfile::{self, FixedVersions, cargo_upgrade, npm_upgrade, python_upgrade};
use crate::patch::bump::{BumpOutcome, ManifestKind, bump_manifest};
use crate::pr_text::{Label, LabelledLine};
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::patcher::FixStrategy;

/// What every upgrade path works on: the job's package and fix, in this clone.
pub(super) struct Context<'a> {
    pub pipeline: &'a Pipeline,
    pub root: &'a Path,
    pub target: &'a RemediationTarget,
    pub fixes: &'a FixedVersions,
    /// The manifests beside the locks that hold the package.
    pub manifests: &'a [String],
}

impl Context<'_> {
    /// The locks that still resolve a vulnerable copy of the package.
    fn vulnerable_locks(&self) -> Vec<LockedCopies> {
        let mut locks = lockfile::transitive::find(
            self.root,
            &self.target.ecosystem,
            &self.target.package_name,
            self.fixes,
        );
        locks.retain(|lock| lock.copies.iter().any(|copy| copy.vulnerable));
        locks
    }
}

/// The upgrade path of a project whose lock-only update moved nothing: the result, or (inner
/// `Err`) why there is none, naming the parent and what would unblock it; `None` for an
/// ecosystem without one (Go: `go get` already moves what its requirements allow).
pub(super) async fn find(context: &Context<'_>) -> Option<Found> {
    Some(match context.target.ecosystem {
        Ecosystem::Npm => js(context).await,
        Ecosystem::CratesIo => cargo(context).await,
        Ecosystem::PyPi => python(context).await,
        Ecosystem::Go | Ecosystem::Maven | Ecosystem::Other(_) => return None,
    })
}

/// Why a blocked job of an ecosystem without an upgrade path ([`find`] gives `None`) found
/// no parent release itself.
pub(super) fn none_found(ecosystem: &Ecosystem) -> String {
    format!(
        "the worker looks for one itself in npm, pnpm, yarn, Cargo, uv and Poetry projects, not \
         in {ecosystem} ones"
    )
}

/// The result of a parent upgrade: what changed, the locks read back, and the PR's two lines
/// (why a parent moved, and the chain). Shared by every ecosystem's upgrade path.
fn upgraded(
    changed: Vec<(String, String)>,
    verification: lockfile::Verification,
    package: &str,
    chains: &[String],
) -> Locked {
    Locked {
        changed,
        verification: Some(verification),
        draft_reason: None,
        strategy: Some(FixStrategy::ParentUpgrade),
        strategy_lines: vec![
            LabelledLine::new(
                Label::Strategy,
                format!(
                    "parent upgrade: no release of {package} that its dependents admit fixes \
                     it, so the dependency that holds it moves to its lowest release that \
                     admits the fix."
                ),
            ),
            LabelledLine::new(Label::Chain, format!("{}.", chains.join("; "))),
        ],
    }
}

/// An upgrade path's result: the fix, or (inner `Err`) why there is none, naming the parent
/// and what would unblock it; the outer `Err` is a failure of the step itself.
pub(super) type Found = Result<Result<Locked, String>, StepFailure>;

/// The project's files before the upgrade path touched them, to compute what changed and to
/// put them back.
#[derive(Default)]
struct Originals(Vec<(String, String)>);

impl Originals {
    fn keep(&mut self, root: &Path, path: &str) -> Result<String, StepFailure> {
        let text = crate::lockfile::repo_file::read(root, path)
            .map_err(|e| StepFailure::transient(STEP, format!("reading {path}: {e}")))?;
        if !self.0.iter().any(|(p, _)| p == path) {
            self.0.push((path.to_owned(), text.clone()));
        }
        Ok(text)
    }

    fn restore(&self, root: &Path) -> Result<(), StepFailure> {
        for (path, text) in &self.0 {
            std::fs::write(root.join(path), text)
                .map_err(|e| StepFailure::transient(STEP, format!("restoring {path}: {e}")))?;
        }
        Ok(())
    }

    /// Each kept file whose content the path changed, with its new content.
    fn changed(&self, root: &Path) -> Vec<(String, String)> {
        let mut changed: Vec<(String, String)> = self
            .0
            .iter()
            .filter_map(|(path, before)| {
                let after = crate::lockfile::repo_file::read(root, path).ok()?;
                (after != *before).then(|| (path.clone(), after))
            })
            .collect();
        // Manifests first, as a direct change lists them.
        changed.sort_by_key(|(path, _)| ManifestKind::detect(path).is_none());
        changed
    }
}

/// Raises `parent` to `to` in `manifest` (range style kept) when what it declares does not
/// admit `to`, per `admits`; `Ok(false)` when the manifest needs no edit.
fn bump_declared(
    root: &Path,
    originals: &mut Originals,
    manifest: &str,
    parent: &str,
    to: &str,
    admits: fn(&str, &str) -> Option<bool>,
) -> Result<bool, String> {
    let kind = ManifestKind::detect(manifest).ok_or_else(|| format!("{manifest} is unknown"))?;
    let text = originals.keep(root, manifest).map_err(|e| e.message)?;
    match bump_manifest(kind, &text, parent, to) {
        Ok(BumpOutcome::Bumped { updated, from, .. }) if admits(&from, to) != Some(true) => {
            std::fs::write(root.join(manifest), updated)
                .map_err(|e| format!("writing {manifest}: {e}"))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(error) => Err(error.to_string()),
    }
}

/// Levels walked up from an npm-ecosystem package to the project's own dependencies, at most.
const MAX_JS_LEVELS: usize = 4;

/// The npm, pnpm and yarn upgrade path: each package whose lock entry pins the package below
/// the fix moves to its lowest later release, in its major, whose own range admits the fix;
/// one the project does not declare is walked up the same way (its holders must admit its new
/// release) to a direct dependency of a root project, which is raised (range style kept).
/// Then the project's manager updates its lock as for a direct change, resolving the levels
/// between.
async fn js(context: &Context<'_>) -> Found {
    let mut originals = Originals::default();
    let mut chains = Vec::new();
    for manifest in context.manifests {
        if let Err(why) = js_project(context, manifest, &mut originals, &mut chains).await? {
            originals.restore(context.root)?;
            return Ok(Err(why));
        }
    }
    finish(context, originals, chains).await
}

/// One package of the npm-family walk: the blocker, what it holds, the release of that it
/// must admit, and its level below the project's own dependencies.
struct JsHolder {
    blocker: npm_upgrade::Blocker,
    holds: String,
    wanted: String,
    level: usize,
}

/// The npm-family walk for the root project of `manifest`: its own dependencies raised in
/// `manifest`, each chain added to `chains`; (inner `Err`) why the walk found no way, the
/// caller putting the files back.
async fn js_project(
    context: &Context<'_>,
    manifest: &str,
    originals: &mut Originals,
    chains: &mut Vec<String>,
) -> Result<Result<(), String>, StepFailure> {
    let (root, package) = (context.root, &context.target.package_name);
    // A workspace member's lock is its root's; the root's own manifest is the one raised.
    let Some((manager, lock)) = Manager::beside(root, manifest) else {
        return Ok(Ok(()));
    };
    let text = originals.keep(root, manifest)?;
    let lock_text = originals.keep(root, &lock)?;
    let holders = |name: &str, admitting: &[&str]| {
        npm_upgrade::blockers(manager, &lock_text, &text, name, admitting)
    };
    // The package's holders block when their range admits no fix of any release line.
    let fixes: Vec<&str> = context.fixes.versions().collect();
    let mut work: Vec<JsHolder> = holders(package, &fixes)
        .into_iter()
        .map(|blocker| JsHolder::new(blocker, package, context.fixes.chosen(), 1))
        .collect();
    let mut seen = Vec::new();
    while let Some(next) = work.pop() {
        let JsHolder { blocker, holds, .. } = &next;
        if seen.contains(&(blocker.name.clone(), blocker.version.clone())) {
            continue;
        }
        seen.push((blocker.name.clone(), blocker.version.clone()));
        let Some(upgrade) = next.upgrade(context, manifest).await? else {
            return Ok(Err(next.no_later_release()));
        };
        chains.push(upgrade.chain(holds));
        if blocker.direct {
            let always = |_: &str, _: &str| None;
            let (parent, to) = (&upgrade.parent, &upgrade.to);
            if let Err(why) = bump_declared(root, originals, manifest, parent, to, always) {
                return Ok(Err(format!(
                    "{} would admit it, but {why}",
                    upgrade.chain(holds)
                )));
            }
            continue;
        }
        let name = &blocker.name;
        let above = holders(name, &[upgrade.to.as_str()]);
        if !above.is_empty() && next.level < MAX_JS_LEVELS {
            let level = next.level + 1;
            work.extend((above.into_iter()).map(|b| JsHolder::new(b, name, &upgrade.to, level)));
            continue;
        }
        return Ok(Err(stranded(
            &upgrade,
            holds,
            name,
            above.is_empty(),
            chains,
        )));
    }
    Ok(Ok(()))
}

/// Why the npm-family walk stops at a package the project does not declare: nothing above it
/// holds it back (the worker raises only the project's own dependencies), or the walk went
/// more than [`MAX_JS_LEVELS`] levels up.
fn stranded(
    upgrade: &npm_upgrade::ParentUpgrade,
    holds: &str,
    name: &str,
    top: bool,
    chains: &[String],
) -> String {
    match top {
        true => format!(
            "{} would admit it, and what depends on {name} admits {}: the worker raises \
             the project's own dependencies, not a package further down",
            upgrade.chain(holds),
            upgrade.to
        ),
        false => format!(
            "{} would admit it, more than {MAX_JS_LEVELS} levels below the project's own \
             dependencies",
            chains.join("; ")
        ),
    }
}

impl JsHolder {
    fn new(blocker: npm_upgrade::Blocker, holds: &str, wanted: &str, level: usize) -> Self {
        let (holds, wanted) = (holds.to_owned(), wanted.to_owned());
        JsHolder {
            blocker,
            holds,
            wanted,
            level,
        }
    }

    /// The lowest later release of the blocker, in its major, that admits what it must
    /// (`npm view` in the sandbox, from `manifest`'s directory).
    async fn upgrade(
        &self,
        context: &Context<'_>,
        manifest: &str,
    ) -> Result<Option<npm_upgrade::ParentUpgrade>, StepFailure> {
        let Context { pipeline, root, .. } = *context;
        let dir = lockfile::parent_dir(manifest);
        let (sandbox, settings) = (&pipeline.sandbox, &pipeline.lockfiles);
        let (blocker, holds, wanted) = (&self.blocker, &self.holds, &self.wanted);
        npm_upgrade::find(sandbox, settings, root, dir, blocker, holds, wanted)
            .await
            .map_err(super::failed)
    }

    /// Why the blocker stops the walk: no later release of it, in its major, admits what it
    /// must.
    fn no_later_release(&self) -> String {
        let (name, version) = (&self.blocker.name, &self.blocker.version);
        let major = version.split('.').next().unwrap_or("0");
        format!(
            "{name} {version} asks for {} {}, and no later release of {name} in {major}.x \
             admits {}",
            self.holds, self.blocker.range, self.wanted
        )
    }
}

/// The Cargo upgrade path: for each `Cargo.lock` holding a vulnerable copy, the parents to
/// move (read from the registry index cargo reads), a member's manifest bumped where its
/// requirement excludes the new release, then `cargo update --precise` for each parent
/// top-down and for the package.
async fn cargo(context: &Context<'_>) -> Found {
    let Context { pipeline, root, .. } = *context;
    let package = &context.target.package_name;
    let settings = &pipeline.lockfiles;
    let tool_context = lockfile::tool::LockContext {
        sandbox: &pipeline.sandbox,
        settings,
        work_tree: root,
    };
    let mut originals = Originals::default();
    let mut chains = Vec::new();
    for lock in context.vulnerable_locks() {
        let text = originals.keep(root, &lock.lock)?;
        let fetched = lockfile::cargo::fetched_index(tool_context, &lock.lock)
            .await
            .map_err(super::failed)?;
        let index = |name: &str| match cargo_upgrade::local_index(settings, name) {
            local if !local.is_empty() => local,
            _ => fetched
                .get(&name.to_ascii_lowercase())
                .map(|bytes| cargo_upgrade::parse_cache(bytes))
                .unwrap_or_default(),
        };
        let planned = cargo_upgrade::plan(
            &cargo_upgrade::parse_lock(&text),
            &index,
            package,
            context.fixes,
        );
        let steps = match planned {
            Ok(steps) => steps,
            Err(why) => return Ok(Err(why)),
        };
        let dir = lockfile::parent_dir(&lock.lock);
        let members = lockfile::transitive::manifests_under(root, dir, "Cargo.toml");
        for step in steps.iter().filter(|s| s.direct) {
            for manifest in &members {
                let (parent, to) = (&step.upgrade.parent, &step.upgrade.to);
                let bumped = bump_declared(
                    root,
                    &mut originals,
                    manifest,
                    parent,
                    to,
                    crate::patch::bump::cargo_range_admits,
                );
                if let Err(why) = bumped {
                    originals.restore(root)?;
                    let why = format!("{parent} {to} would admit the fix, but {why}");
                    return Ok(Err(why));
                }
            }
        }
        let applied = cargo_upgrade::apply(tool_context, &lock.lock, &steps).await;
        if let Err(error) = applied {
            originals.restore(root)?;
            let why = format!(
                "{} would admit it, but cargo could not move there: {error}",
                steps
                    .iter()
                    .map(|s| s.chain())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return Ok(Err(why));
        }
        chains.extend(steps.iter().map(cargo_upgrade::Step::chain));
    }
    finish(context, originals, chains).await
}

/// The Python upgrade path (uv, Poetry): the project's own dependency that holds the package
/// moves to its lowest release that admits the fix, found by uv's resolver in the sandbox.
async fn python(context: &Context<'_>) -> Found {
    let Context { pipeline, root, .. } = *context;
    let (package, target_version) = (&context.target.package_name, context.fixes.chosen());
    let settings = &pipeline.lockfiles;
    let tool_context = lockfile::tool::LockContext {
        sandbox: &pipeline.sandbox,
        settings,
        work_tree: root,
    };
    let mut originals = Originals::default();
    let mut chains = Vec::new();
    for lock in context.vulnerable_locks() {
        let text = originals.keep(root, &lock.lock)?;
        let pyproject = originals.keep(root, &lock.manifest)?;
        let holders = match python_upgrade::holders(&text, &pyproject, package, target_version) {
            Ok(holders) => holders,
            Err(why) => return Ok(Err(why)),
        };
        let dir = lockfile::parent_dir(&lock.lock);
        let mut moved = Vec::new();
        for holder in &holders {
            let context = lockfile::tool::LockContext {
                sandbox: &pipeline.sandbox,
                settings,
                work_tree: root,
            };
            let found = python_upgrade::find(
                context,
                &lock.lock,
                &pyproject,
                holder,
                package,
                target_version,
            )
            .await
            .map_err(super::failed)?;
            let upgrade = match found {
                python_upgrade::Found::NotBlocking => continue,
                python_upgrade::Found::Upgrade(upgrade) => upgrade,
                python_upgrade::Found::NoRelease => {
                    originals.restore(root)?;
                    let why = format!(
                        "{} {} does not admit {package} {target_version}, and no later release \
                         of {} does; replace it, or ask its maintainers for a release that does",
                        holder.name, holder.version, holder.name
                    );
                    return Ok(Err(why));
                }
            };
            let bumped = bump_declared(
                root,
                &mut originals,
                &lock.manifest,
                &upgrade.parent,
                &upgrade.to,
                |_, _| None,
            );
            if let Err(why) = bumped {
                tracing::info!(%why, parent = %upgrade.parent, "parent declared without a bumpable version; the tool moves it");
            }
            chains.push(upgrade.chain(package));
            moved.push(upgrade);
        }
        if moved.is_empty() {
            continue;
        }
        let applied = python_upgrade::apply(tool_context, &lock.lock, &moved).await;
        if let Err(error) = applied {
            originals.restore(root)?;
            let why = format!(
                "{} would admit it, but the lock could not be moved there ({dir}): {error}",
                chains.join("; ")
            );
            return Ok(Err(why));
        }
    }
    finish(context, originals, chains).await
}

/// Has the tool move the package itself as for a direct change, checks no vulnerable copy is
/// left (else puts everything back), and records what changed.
async fn finish(context: &Context<'_>, originals: Originals, chains: Vec<String>) -> Found {
    let Context {
        pipeline,
        root,
        target,
        fixes,
        manifests,
    } = *context;
    if chains.is_empty() {
        originals.restore(root)?;
        let why = "no dependency the project declares holds it in the lock (the worker \
                   upgrades those, not packages further down)";
        return Ok(Err(why.to_owned()));
    }
    let outcome = match relock(pipeline, root, target, fixes, manifests).await {
        Ok(outcome) => outcome,
        Err(failure) => {
            originals.restore(root)?;
            return Err(failure);
        }
    };
    if outcome.verification.vulnerable_left > 0 {
        originals.restore(root)?;
        let why = format!(
            "after {}, a vulnerable copy is still held by another dependent",
            chains.join("; ")
        );
        return Ok(Err(why));
    }
    let mut changed = originals.changed(root);
    for (path, text) in outcome.changed {
        if !changed.iter().any(|(p, _)| *p == path) {
            changed.push((path, text));
        }
    }
    Ok(Ok(upgraded(
        changed,
        outcome.verification,
        &target.package_name,
        &chains,
    )))
}
