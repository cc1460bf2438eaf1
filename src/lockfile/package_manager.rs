//! The package manager the repository asks for, not whichever one the worker has.
//!
//! A pnpm lock written by pnpm 8 (`lockfileVersion: '6.0'`) is not read by pnpm 10 the same
//! way ("Ignoring not compatible lockfile", or a rewrite to another format), and a yarn Berry
//! project without a committed release names its yarn in `package.json` only. So:
//!
//! - `packageManager` in the root `package.json` (`pnpm@8.15.4`, `yarn@4.1.0+sha512.<hex>`)
//!   names the release, as corepack reads it;
//! - without it, the lock's own format marker picks a compatible major (pnpm's
//!   `lockfileVersion`).
//!
//! A release other than the worker's own is fetched from the npm registry through the sandbox
//! (`npm pack`: the registry's integrity is checked by npm, and `packageManager`'s own hash, when
//! given, by the worker), unpacked in the sandbox, and kept in the worker's cache
//! (`lockfiles.tool_cache`), which only the worker writes and runs mount read-only. A release
//! that cannot be had fails the job naming it.

use std::path::{Path, PathBuf};

use sha2::Digest;

use super::{LockError, LockfileSettings, join, repo_file};
use crate::sandbox::{Sandbox, ToolRun};

/// A release of a package manager the project asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// `pnpm` or `yarn`.
    pub name: &'static str,
    /// An exact version (`8.15.4`), or a major (`8`) for the newest release in it.
    pub version: String,
    /// corepack's hash of the release's tarball (`sha512`, hex), when `packageManager` has one.
    pub sha512: Option<String>,
    /// Where the wish comes from, for the job's history and errors.
    pub source: String,
}

impl Wanted {
    /// The major version asked for.
    pub fn major(&self) -> u64 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

/// `packageManager` of the `package.json` in `dir` (or the nearest above it), when it names
/// `name`.
pub fn from_manifest(work_tree: &Path, dir: &str, name: &'static str) -> Option<Wanted> {
    let mut dir = dir.to_owned();
    loop {
        let manifest = join(&dir, "package.json");
        if let Ok(text) = repo_file::read(work_tree, &manifest)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(field) = json.get("packageManager").and_then(|v| v.as_str())
        {
            return parse_field(field, name, &manifest);
        }
        if dir.is_empty() {
            return None;
        }
        dir = super::parent_dir(&dir).to_owned();
    }
}

/// `pnpm@8.15.4+sha512.abc`, when it names `name` with a plain version.
fn parse_field(field: &str, name: &'static str, manifest: &str) -> Option<Wanted> {
    let (manager, rest) = field.trim().split_once('@')?;
    if manager != name {
        return None;
    }
    let (version, hash) = match rest.split_once('+') {
        Some((version, hash)) => (version, Some(hash)),
        None => (rest, None),
    };
    let valid = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if !valid {
        return None;
    }
    let sha512 = hash
        .and_then(|h| h.strip_prefix("sha512."))
        .filter(|hex| hex.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    Some(Wanted {
        name,
        version: version.to_owned(),
        sha512,
        source: format!("{manifest} packageManager \"{}\"", field.trim()),
    })
}

/// The pnpm major that writes a lock of `lockfileVersion` (pnpm 7: 5.4; 8: 6.x; 9 and 10:
/// 9.0); `None` for a version this worker's pnpm reads as it is.
pub fn pnpm_major_for_lock(lock_text: &str, lock: &str) -> Option<Wanted> {
    let line = lock_text
        .lines()
        .find_map(|line| line.strip_prefix("lockfileVersion:"))?;
    let version = line.trim().trim_matches(['\'', '"']);
    let major = match version.split('.').next()? {
        "5" => "7",
        "6" => "8",
        _ => return None,
    };
    Some(Wanted {
        name: "pnpm",
        version: major.to_owned(),
        sha512: None,
        source: format!("{lock} lockfileVersion {version}"),
    })
}

/// A release ready to run: node runs `script`, and `root` is mounted read-only.
#[derive(Debug, Clone)]
pub struct Provided {
    pub script: PathBuf,
    pub root: PathBuf,
    /// The version unpacked (`8.15.9` for a wish of `8`).
    pub version: String,
}

impl Provided {
    /// A run of this release by node, in the sandbox.
    pub fn run(
        &self,
        args: Vec<String>,
        work_tree: &Path,
        dir: &str,
        env: &[(&str, &str)],
    ) -> ToolRun {
        let mut all = vec![self.script.to_string_lossy().into_owned()];
        all.extend(args);
        let mut run = ToolRun::networked("node", all, work_tree, dir, env);
        run.read_only.push(self.root.clone());
        run
    }
}

/// The npm package of each manager's releases (Berry's standalone build for yarn 2+).
fn package_of(wanted: &Wanted) -> (&'static str, &'static str) {
    match (wanted.name, wanted.major()) {
        ("yarn", major) if major >= 2 => ("@yarnpkg/cli-dist", "bin/yarn.js"),
        ("yarn", _) => ("yarn", "bin/yarn.js"),
        _ => ("pnpm", "bin/pnpm.cjs"),
    }
}

/// Where releases are kept: `lockfiles.tool_cache`, else a folder of the system's temporary
/// directory.
fn cache_root(settings: &LockfileSettings) -> PathBuf {
    settings
        .tool_cache
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("remediator-tool-cache"))
}

/// The release `wanted`, from the cache or fetched now.
pub async fn provide(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    wanted: &Wanted,
) -> Result<Provided, LockError> {
    let (package, script) = package_of(wanted);
    let root = cache_root(settings);
    let home = root.join(cache_key(package, wanted));
    if let Some(provided) = cached(&home, script) {
        return Ok(provided);
    }
    let io = |what: &str, e: std::io::Error| LockError::Read {
        path: root.display().to_string(),
        message: format!("{what}: {e}"),
    };
    std::fs::create_dir_all(&root).map_err(|e| io("creating the tool cache", e))?;
    let work = tempfile::Builder::new()
        .prefix(".fetching-")
        .tempdir_in(&root)
        .map_err(|e| io("creating a folder in the tool cache", e))?;
    let spec = format!("{package}@{}", wanted.version);
    let tarball = pack(sandbox, settings, work.path(), &spec, wanted).await?;
    let version = unpack(sandbox, &tarball, wanted).await?;
    std::fs::write(work.path().join("VERSION"), &version)
        .map_err(|e| io("writing to the tool cache", e))?;
    // Into place at once; a job that got there first has already put the same release there.
    let staged = work.keep();
    if std::fs::rename(&staged, &home).is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    tracing::info!(release = %spec, %version, source = %wanted.source, "fetched the package manager the repository asks for");
    cached(&home, script)
        .ok_or_else(|| cannot_get(wanted, format!("{script} is missing from the release")))
}

/// The tool cache's folder of a release: the package, the version, and the start of
/// `packageManager`'s hash (two hashes of one version are two releases).
fn cache_key(package: &str, wanted: &Wanted) -> String {
    let hash = wanted
        .sha512
        .as_deref()
        .map_or(String::new(), |h| format!("+{}", &h[..16.min(h.len())]));
    format!("{}@{}{hash}", package.replace('/', "+"), wanted.version)
}

/// The error of a release the worker cannot get, naming who asked for it.
fn cannot_get(wanted: &Wanted, why: String) -> LockError {
    LockError::Unsupported(format!(
        "{} asks for {} {}, which this worker cannot get: {why}",
        wanted.source, wanted.name, wanted.version
    ))
}

/// `npm pack SPEC` into `work` in the sandbox (npm checks the registry's integrity): the
/// tarball, checked against `packageManager`'s own hash when it gives one.
async fn pack(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work: &Path,
    spec: &str,
    wanted: &Wanted,
) -> Result<PathBuf, LockError> {
    let mut args = vec!["pack".to_owned(), spec.to_owned(), "--json".to_owned()];
    if !settings.npm_registry.is_empty() {
        args.push(format!("--registry={}", settings.npm_registry));
    }
    let pack = ToolRun::networked(&settings.npm, args, work, "", &super::npm::ENV);
    let packed =
        super::run_with_credentials(sandbox, settings, &pack, super::npm::INSTALL_HINT).await?;
    if !packed.success() {
        let why = format!(
            "`npm pack {spec}` failed ({}): {}",
            packed.status, packed.output
        );
        return Err(cannot_get(wanted, why));
    }
    let io = |e: std::io::Error| LockError::Read {
        // The cache's own folder names where it went wrong (`work` is a scratch folder in it).
        path: work.parent().unwrap_or(work).display().to_string(),
        message: format!("reading the fetched release: {e}"),
    };
    let tarball = std::fs::read_dir(work)
        .map_err(io)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
        .ok_or_else(|| cannot_get(wanted, "npm pack wrote no tarball".to_owned()))?;
    if let Some(expected) = &wanted.sha512 {
        let bytes = std::fs::read(&tarball).map_err(io)?;
        let actual = hex(&sha2::Sha512::digest(&bytes));
        if &actual != expected {
            let why = format!("the tarball's sha512 is {actual}, not the one packageManager names");
            return Err(cannot_get(wanted, why));
        }
    }
    Ok(tarball)
}

/// Unpacks `tarball` beside itself in the sandbox and removes it: the release's version, as
/// its file name says (`pnpm-8.15.4.tgz`).
async fn unpack(sandbox: &Sandbox, tarball: &Path, wanted: &Wanted) -> Result<String, LockError> {
    let name = tarball
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let version = name
        .trim_end_matches(".tgz")
        .rsplit('-')
        .next()
        .unwrap_or(&wanted.version)
        .to_owned();
    let work = tarball.parent().unwrap_or(tarball);
    let unpack = ToolRun {
        program: "tar".to_owned(),
        args: vec![
            "-xzf".to_owned(),
            name.clone(),
            "--no-same-owner".to_owned(),
        ],
        network: false,
        ..ToolRun::networked("tar", Vec::new(), work, "", &[])
    };
    let unpacked = sandbox.run(&unpack, "apt-get install tar").await?;
    if !unpacked.success() {
        let why = format!("unpacking {name} failed: {}", unpacked.output);
        return Err(cannot_get(wanted, why));
    }
    let _ = std::fs::remove_file(tarball);
    Ok(version)
}

/// The version the worker's own `program` reports, asked once (in the sandbox, no network).
pub async fn worker_version(sandbox: &Sandbox, program: &str) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static SEEN: OnceLock<Mutex<HashMap<String, Option<String>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(version) = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(program)
    {
        return version.clone();
    }
    let empty = tempfile::tempdir().ok()?;
    let mut run = ToolRun::networked(program, vec!["--version".to_owned()], empty.path(), "", &[]);
    run.network = false;
    let version = match sandbox.run(&run, "").await {
        Ok(ran) if ran.success() => ran.output.lines().last().map(|l| l.trim().to_owned()),
        _ => None,
    };
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(program.to_owned(), version.clone());
    version
}

/// Whether the worker's own release (`version`) is what `wanted` asks for: the same major for
/// a major, the same version for an exact one.
pub fn satisfied_by(wanted: &Wanted, version: Option<&str>) -> bool {
    let Some(version) = version else {
        return false;
    };
    match wanted.version.contains('.') {
        true => version == wanted.version,
        false => version.split('.').next() == Some(wanted.version.as_str()),
    }
}

fn cached(home: &Path, script: &str) -> Option<Provided> {
    let path = home.join("package").join(script);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    meta.is_file().then(|| Provided {
        script: path,
        root: home.to_path_buf(),
        version: std::fs::read_to_string(home.join("VERSION"))
            .unwrap_or_default()
            .trim()
            .to_owned(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_manager_fields_are_read_as_corepack_reads_them() {
        let wanted = parse_field("pnpm@8.15.4+sha512.ABCDEF01", "pnpm", "package.json").unwrap();
        assert_eq!(wanted.version, "8.15.4");
        assert_eq!(wanted.sha512.as_deref(), Some("abcdef01"));
        assert_eq!(wanted.major(), 8);
        assert!(wanted.source.contains("package.json packageManager"));
        assert_eq!(parse_field("yarn@4.1.0", "pnpm", "package.json"), None);
        assert_eq!(
            parse_field("pnpm@https://evil.example/pnpm.tgz", "pnpm", "p"),
            None
        );
        assert_eq!(parse_field("pnpm@../../x", "pnpm", "p"), None);
        assert_eq!(
            package_of(&parse_field("yarn@3.6.1", "yarn", "p").unwrap()),
            ("@yarnpkg/cli-dist", "bin/yarn.js")
        );
    }

    #[test]
    fn a_pnpm_lock_names_the_major_that_wrote_it() {
        let v6 = pnpm_major_for_lock("lockfileVersion: '6.0'\n\nsettings:\n", "pnpm-lock.yaml");
        assert_eq!(v6.map(|w| w.version), Some("8".to_owned()));
        let v5 = pnpm_major_for_lock("lockfileVersion: 5.4\n", "pnpm-lock.yaml");
        assert_eq!(v5.map(|w| w.version), Some("7".to_owned()));
        assert_eq!(pnpm_major_for_lock("lockfileVersion: '9.0'\n", "l"), None);
    }

    #[test]
    fn the_workers_own_release_serves_when_it_is_the_one_asked_for() {
        let major = pnpm_major_for_lock("lockfileVersion: '6.0'\n", "l").unwrap();
        assert!(satisfied_by(&major, Some("8.15.9")));
        assert!(!satisfied_by(&major, Some("10.3.0")));
        let exact = parse_field("pnpm@8.15.4", "pnpm", "p").unwrap();
        assert!(satisfied_by(&exact, Some("8.15.4")));
        assert!(!satisfied_by(&exact, Some("8.15.9")));
        assert!(!satisfied_by(&exact, None));
    }
}
