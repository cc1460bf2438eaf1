//! The Python upgrade path (uv and Poetry) for a transitive package its dependents hold below
//! the fix (an upper bound such as `vulnpkg<1.0.1`): which of the project's own dependencies
//! hold it (read from `uv.lock` or `poetry.lock` and the `pyproject.toml`), and for each the
//! lowest later release that admits the fix. uv's resolver answers that in the sandbox (`uv
//! pip compile --resolution lowest-direct` of `PARENT>OLD` with `PACKAGE>=FIXED`), from the
//! worker's index or find-links, or for a Poetry project from the source it declares; then
//! the project's tool moves the parent (`uv lock --upgrade-package PARENT==NEW`, `poetry
//! update PARENT --lock`).

use std::io::Write;

use toml_edit::DocumentMut;

use super::npm_upgrade::ParentUpgrade;
use super::tool::LockContext;
use super::{LockError, poetry, uv};
use crate::patch::bump::pep503_name;
use crate::patch::bump::{
    BumpError, BumpOutcome, ManifestKind, Version, bump_manifest, pep440_specifier_admits,
};

/// Where the requirements of a trial are bound in the sandbox.
const TRIAL_FILE: &str = "/tmp/parent-upgrade.in";

/// A dependency of the project that holds the package, as the lock shows it.
pub use super::blockers::Dependent as Holder;

/// What the resolver says about one holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Its locked release admits the fix: something else holds the package.
    NotBlocking,
    Upgrade(ParentUpgrade),
    /// No later release admits the fix.
    NoRelease,
}

/// Levels walked up from the package to the project's own dependencies, at most.
const MAX_DEPTH: usize = 4;

/// The project's own dependencies (declared in `pyproject`) that hold `package` in the lock:
/// those that depend on it and whose recorded requirement (when there is one) does not admit
/// `target`, and, for a holder the project does not declare, the declared ones that bring it
/// in, walked up through the lock (the resolver then moves everything between). An error
/// names the holders when no declared dependency brings them in.
pub fn holders(
    lock: &str,
    pyproject: &str,
    package: &str,
    target: &str,
) -> Result<Vec<Holder>, String> {
    let declared = |name: &str| {
        !matches!(
            bump_manifest(ManifestKind::PyprojectToml, pyproject, name, "0"),
            Ok(BumpOutcome::NotDeclared) | Err(BumpError::Parse { .. })
        )
    };
    let (direct, deeper): (Vec<Holder>, Vec<Holder>) = super::blockers::toml_holders(lock, package)
        .into_iter()
        .partition(|h| declared(&h.name));
    let mut found: Vec<Holder> = direct
        .into_iter()
        .filter(|h| {
            h.asks
                .as_deref()
                .is_none_or(|asks| pep440_specifier_admits(asks, target) != Some(true))
        })
        .collect();
    let mut seen: Vec<String> = deeper.iter().map(|h| pep503_name(&h.name)).collect();
    let mut level = deeper.clone();
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for holder in &level {
            for up in super::blockers::toml_holders(lock, &holder.name) {
                if seen.contains(&pep503_name(&up.name)) {
                    continue;
                }
                seen.push(pep503_name(&up.name));
                match declared(&up.name) {
                    // What it asks of the holder below says nothing of the package.
                    true => found.push(Holder { asks: None, ..up }),
                    false => next.push(up),
                }
            }
        }
        level = next;
    }
    if found.is_empty() && !deeper.is_empty() {
        let names: Vec<String> = deeper
            .iter()
            .map(|h| format!("{} {}", h.name, h.version))
            .collect();
        return Err(format!(
            "it is held by {}, which no dependency the project declares brings in within \
             {MAX_DEPTH} levels; upgrade the dependency that brings {} in to a release that \
             admits {package} {target}",
            names.join(", "),
            names.join(", ")
        ));
    }
    Ok(found)
}

/// The version of `name` in the output of `uv pip compile` (`name==version` lines).
pub fn compiled_version(output: &str, name: &str) -> Option<String> {
    let wanted = pep503_name(name);
    output.lines().find_map(|line| {
        let (n, version) = line.trim().split_once("==")?;
        (pep503_name(n.trim()) == wanted).then(|| version.trim().to_owned())
    })
}

/// The lowest later release of `holder` that admits `package` `target`: in its major first,
/// else any later one, as uv's resolver finds it in the sandbox.
pub async fn find(
    context: LockContext<'_>,
    lock: &str,
    pyproject: &str,
    holder: &Holder,
    package: &str,
    target: &str,
) -> Result<Found, LockError> {
    let index = match lock.ends_with(poetry::LOCK_FILE) {
        true => poetry_source(pyproject).unwrap_or_default(),
        false => String::new(),
    };
    let fix = format!("{package}>={target}");
    let trial = |parent: String| {
        let lines = [parent, fix.clone()];
        compile(context, lock, &index, lines)
    };
    let (name, current) = (&holder.name, &holder.version);
    if trial(format!("{name}=={current}")).await?.is_some() {
        return Ok(Found::NotBlocking);
    }
    let mut ranges = Vec::new();
    if let Some(major) = Version::parse(current).map(|v| v.major()) {
        ranges.push(format!("{name}>{current},<{}", major + 1));
    }
    ranges.push(format!("{name}>{current}"));
    for range in ranges {
        if let Some(output) = trial(range).await? {
            let Some(to) = compiled_version(&output, name) else {
                continue;
            };
            return Ok(Found::Upgrade(ParentUpgrade {
                parent: name.clone(),
                from: current.clone(),
                to,
                range: compiled_version(&output, package),
            }));
        }
    }
    Ok(Found::NoRelease)
}

/// The URL of the package source a Poetry project declares first (`[[tool.poetry.source]]`).
fn poetry_source(pyproject: &str) -> Option<String> {
    let document = pyproject.parse::<DocumentMut>().ok()?;
    let sources = document.get("tool")?.get("poetry")?.get("source")?;
    let first = sources.as_array_of_tables()?.iter().next()?;
    first.get("url")?.as_str().map(str::to_owned)
}

/// `uv pip compile` of `lines` with the lowest release of each (what they ask for directly),
/// in the sandbox: `Some(output)` when they resolve, `None` when no release satisfies them.
async fn compile(
    context: LockContext<'_>,
    lock: &str,
    index: &str,
    lines: [String; 2],
) -> Result<Option<String>, LockError> {
    let LockContext {
        sandbox,
        settings,
        work_tree,
    } = context;
    let io = |e: std::io::Error| LockError::Read {
        path: "the upgrade trial's requirements".to_owned(),
        message: e.to_string(),
    };
    // The worker's own file, bound read-only: nothing is written into the clone.
    let mut file = tempfile::NamedTempFile::new().map_err(io)?;
    writeln!(file, "{}", lines.join("\n")).map_err(io)?;
    let args = [
        "pip",
        "compile",
        TRIAL_FILE,
        "--resolution",
        "lowest-direct",
        "--no-header",
        "--no-annotate",
        "--quiet",
    ]
    .map(str::to_owned)
    .to_vec();
    let dir = super::parent_dir(lock);
    let mut run = uv::resolver_run(settings, work_tree, dir, args, index);
    run.files_at
        .push((file.path().to_path_buf(), TRIAL_FILE.to_owned()));
    let ran = super::run_with_credentials(sandbox, settings, &run, uv::INSTALL_HINT).await?;
    drop(file);
    if ran.success() {
        return Ok(Some(ran.output));
    }
    if ran.output.contains("No solution found") {
        return Ok(None);
    }
    Err(super::tool_failed(
        format!("uv pip compile ({})", lines.join(", ")),
        lock,
        ran,
    ))
}

/// Has the project's tool move each parent to its new release in `lock`.
pub async fn apply(
    context: LockContext<'_>,
    lock: &str,
    upgrades: &[ParentUpgrade],
) -> Result<(), LockError> {
    let (settings, work_tree) = (context.settings, context.work_tree);
    let (run, hint) = if lock.ends_with(poetry::LOCK_FILE) {
        let names: Vec<&str> = upgrades.iter().map(|u| u.parent.as_str()).collect();
        let run = poetry::update_run(settings, work_tree, lock, &names);
        (run, poetry::INSTALL_HINT)
    } else {
        let pins: Vec<String> = upgrades
            .iter()
            .map(|u| format!("{}=={}", u.parent, u.to))
            .collect();
        (
            uv::lock_run(settings, work_tree, lock, &pins),
            uv::INSTALL_HINT,
        )
    };
    super::run_tool(context.sandbox, settings, &run, hint, lock).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The project's own dependency that holds the package, as the lock shows it.
    fn parentpkg() -> Holder {
        Holder {
            name: "parentpkg".into(),
            version: "1.0.0".into(),
            asks: None,
        }
    }

    const PYPROJECT: &str = "[project]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"parentpkg>=1.0\", \"easy\"]\n";

    #[test]
    fn holders_are_the_projects_dependencies_that_require_the_package() {
        let uv_lock = "version = 1\n\n[[package]]\nname = \"parentpkg\"\nversion = \"1.0.0\"\ndependencies = [{ name = \"VulnPkg\" }]\n\n[[package]]\nname = \"other\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"vulnpkg\"\nversion = \"1.0.0\"\n";
        // app -> parentpkg -> middle -> vulnpkg, and a cycle between middle and loop: a holder
        // the project does not declare is walked up to a declared one.
        let walked_up = "version = 1\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\ndependencies = [{ name = \"parentpkg\" }]\n\n[[package]]\nname = \"parentpkg\"\nversion = \"1.0.0\"\ndependencies = [{ name = \"middle\" }]\n\n[[package]]\nname = \"middle\"\nversion = \"3.0.0\"\ndependencies = [{ name = \"vulnpkg\" }, { name = \"loop\" }]\n\n[[package]]\nname = \"loop\"\nversion = \"1.0.0\"\ndependencies = [{ name = \"middle\" }]\n\n[[package]]\nname = \"vulnpkg\"\nversion = \"1.0.0\"\n";
        for lock in [uv_lock, walked_up] {
            assert_eq!(
                holders(lock, PYPROJECT, "vulnpkg", "1.0.1"),
                Ok(vec![parentpkg()]),
                "{lock}"
            );
        }
    }

    #[test]
    fn a_holder_whose_recorded_requirement_admits_the_fix_holds_nothing() {
        // Poetry records what each asks: one that admits the fix holds nothing.
        let poetry_lock = "[[package]]\nname = \"parentpkg\"\nversion = \"1.0.0\"\n\n[package.dependencies]\nvulnpkg = \">=1.0.0,<1.0.1\"\n\n[[package]]\nname = \"easy\"\nversion = \"2.0.0\"\n\n[package.dependencies]\nvulnpkg = \">=1.0\"\n";
        let found = holders(poetry_lock, PYPROJECT, "vulnpkg", "1.0.1").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].asks.as_deref(), Some(">=1.0.0,<1.0.1"));
    }

    #[test]
    fn a_holder_the_project_does_not_declare_is_named() {
        let lock = "[[package]]\nname = \"middle\"\nversion = \"3.0.0\"\ndependencies = [{ name = \"vulnpkg\" }]\n";
        let error = holders(lock, PYPROJECT, "vulnpkg", "1.0.1").unwrap_err();
        assert!(error.starts_with("it is held by middle 3.0.0"), "{error}");
    }

    #[test]
    fn the_compiled_version_is_read_by_normalised_name() {
        let output = "parent-pkg==1.1.0\nvulnpkg==1.0.1\n";
        assert_eq!(
            compiled_version(output, "Parent_Pkg").as_deref(),
            Some("1.1.0")
        );
        assert_eq!(compiled_version(output, "absent"), None);
        assert_eq!(
            poetry_source(
                "[[tool.poetry.source]]\nname = \"local\"\nurl = \"http://127.0.0.1:9/simple\"\n"
            )
            .as_deref(),
            Some("http://127.0.0.1:9/simple")
        );
    }
}
