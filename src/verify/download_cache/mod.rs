//! The worker's cache of the downloads of the test step's installs, which code in the sandbox
//! cannot poison for other jobs. Cached: npm's tarballs (`npm ci`), yarn 1's (`yarn install
//! --frozen-lockfile`, through its offline mirror), yarn 2+'s zips (the install a repository's
//! own commands run, through its global cache) and Poetry's archives (`poetry install`, its
//! artifact cache); each tool's part is a [`Layout`](layouts::Layout). Not cached: pnpm, uv,
//! pip, Cargo and Go.
//!
//! What the worker keeps is content only: a file is kept when its bytes hash to a digest its
//! tool's lock records (npm's and yarn 1's `integrity`, yarn 2+'s `checksum`, Poetry's `files` hash), under that
//! digest (`STORE/ab/cdef…/`), at the path the tool had it in its cache (Poetry's path hashes
//! the file's address, which the lock does not record). Around each install:
//!
//! 1. [`DownloadCache::seed`] copies the files the lock names, those the worker has, into a
//!    fresh cache inside the run's tree ([`RUN_DIR`]), where the tool's variable points;
//! 2. the install runs in the sandbox and downloads only what was missing (the tools check
//!    what they take from their cache against the lock, as they do a download);
//! 3. [`DownloadCache::harvest`] hashes every file of the run's cache where the tool keeps
//!    downloads and keeps those whose bytes hash to what the lock records for them, then
//!    removes the run's cache, before any test runs.
//!
//! The shared cache is never mounted into the sandbox and seeding copies, never links. A file
//! an install script plants in the run's cache under a download's name is refused (its bytes
//! do not hash to what the lock records), and nothing else of a tool's cache (npm's index, yarn
//! and Poetry's metadata) is taken back: it could be forged, and the tools do not need it.

mod layouts;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

use layouts::{Algorithm, Named, Segment};
pub use layouts::{BERRY, Layout, NPM, POETRY, YARN, of as layouts_of};

/// The run's own cache, relative to the root of the tree the install runs in.
pub const RUN_DIR: &str = ".remediator-download-cache";

/// Larger files are not kept.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Paths a file of one digest is kept at, at most (an install script could copy a real
/// download to many paths of the run's cache).
const MAX_PATHS_PER_DIGEST: usize = 4;

/// The worker's shared cache, under `root`.
#[derive(Debug, Clone)]
pub struct DownloadCache {
    root: PathBuf,
}

/// What one install did with the cache, for the test report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheUse {
    /// Downloads of the lock the cache already had: not downloaded.
    pub reused: usize,
    /// Downloads the install made and the worker kept.
    pub kept: usize,
    /// Files in the run's cache under a download's name whose bytes do not hash to what the
    /// lock records for it: not kept.
    pub refused: usize,
}

impl DownloadCache {
    pub fn new(root: PathBuf) -> Self {
        DownloadCache { root }
    }

    /// Fills `run_cache` with the downloads `lock_text` names that the cache holds, each at
    /// the path its tool had it at, and makes the directory the tool is pointed at.
    pub fn seed(&self, layout: &Layout, lock_text: &str, run_cache: &Path) -> io::Result<CacheUse> {
        std::fs::create_dir_all(run_cache.join(layout.variable.1))?;
        let kept = self.kept(layout, &(layout.named)(lock_text))?;
        for (dir, relative) in &kept {
            let copy = run_cache.join(relative);
            if let Some(dir) = copy.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A copy, never a link: the run may write to what it was given.
            std::fs::copy(dir.join(relative), &copy)?;
        }
        let mut digests: Vec<&PathBuf> = kept.iter().map(|(dir, _)| dir).collect();
        digests.dedup();
        Ok(CacheUse {
            reused: digests.len(),
            ..CacheUse::default()
        })
    }

    /// Keeps every file of `run_cache` whose bytes hash to what `lock_text` records for it,
    /// then removes `run_cache`. Only the lock's own downloads are kept, so the cache grows
    /// with what locks ask for, not with what an install script writes.
    pub fn harvest(
        &self,
        layout: &Layout,
        lock_text: &str,
        run_cache: &Path,
        mut used: CacheUse,
    ) -> io::Result<CacheUse> {
        let named = (layout.named)(lock_text);
        // What was seeded is known: not hashed again, and never replaced.
        let mut seeded: Vec<PathBuf> = self
            .kept(layout, &named)?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        seeded.sort();
        for relative in walk(run_cache, layout.shape)? {
            let claimed = Layout::claimed(&named, &relative);
            if claimed.is_empty() || seeded.binary_search(&relative).is_ok() {
                continue;
            }
            let file = run_cache.join(&relative);
            let digest = digest_of(layout.algorithm, &file)?;
            if !claimed.iter().any(|n| n.digest == digest) {
                used.refused += 1;
                continue;
            }
            let kept = self.digest_dir(layout, &digest);
            let known = walk(&kept, layout.shape)?;
            if !known.contains(&relative) && known.len() < MAX_PATHS_PER_DIGEST {
                self.keep(&file, &kept.join(&relative))?;
                used.kept += 1;
            }
        }
        match std::fs::remove_dir_all(run_cache) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(used)
    }

    /// The files the store holds of the downloads `named`: each as the directory of its
    /// digest and its path in a run's cache (under that directory too).
    fn kept(&self, layout: &Layout, named: &[Named]) -> io::Result<Vec<(PathBuf, PathBuf)>> {
        let mut kept = Vec::new();
        let mut digests: Vec<&str> = named.iter().map(|n| n.digest.as_str()).collect();
        digests.dedup();
        for digest in digests {
            let dir = self.digest_dir(layout, digest);
            for relative in walk(&dir, layout.shape)? {
                kept.push((dir.clone(), relative));
            }
        }
        Ok(kept)
    }

    /// The directory of the files of `digest` in `layout`'s store.
    fn digest_dir(&self, layout: &Layout, digest: &str) -> PathBuf {
        self.root
            .join(layout.store)
            .join(&digest[..2])
            .join(&digest[2..])
    }

    /// Copies `file` to `shared` through a temporary name, so no reader sees half a file.
    fn keep(&self, file: &Path, shared: &Path) -> io::Result<()> {
        let staging = self.root.join("tmp");
        std::fs::create_dir_all(&staging)?;
        let temporary = staging.join(uuid::Uuid::new_v4().to_string());
        std::fs::copy(file, &temporary)?;
        if let Some(dir) = shared.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&temporary, shared)
    }
}

/// The paths, relative to `base`, of the regular files (not links) at most
/// [`MAX_FILE_BYTES`] long whose every name matches `shape`; none when `base` is not a
/// directory.
fn walk(base: &Path, shape: &[Segment]) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk_into(base, PathBuf::new(), shape, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk_into(
    base: &Path,
    relative: PathBuf,
    shape: &[Segment],
    found: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let Some((segment, rest)) = shape.split_first() else {
        return Ok(());
    };
    let dir = base.join(&relative);
    if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_dir()) {
        return Ok(());
    }
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !segment.matches(&name.to_string_lossy()) {
            continue;
        }
        let path = relative.join(&name);
        let kind = std::fs::symlink_metadata(base.join(&path))?;
        match rest.is_empty() {
            true if kind.file_type().is_file() && kind.len() <= MAX_FILE_BYTES => found.push(path),
            true => {}
            false => walk_into(base, path, rest, found)?,
        }
    }
    Ok(())
}

/// The digest of the bytes of `file`, in lowercase hex.
fn digest_of(algorithm: Algorithm, file: &Path) -> io::Result<String> {
    match algorithm {
        Algorithm::Sha256 => hash_file::<Sha256>(file),
        Algorithm::Sha512 => hash_file::<Sha512>(file),
    }
}

fn hash_file<H: Digest>(file: &Path) -> io::Result<String> {
    let mut hasher = H::new();
    let mut reader = std::fs::File::open(file)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn sha512(bytes: &[u8]) -> (String, String) {
        let digest = Sha512::digest(bytes);
        let sri = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        (sri, hex(&digest))
    }

    fn npm_lock(sris: &[&str]) -> String {
        let packages: serde_json::Map<String, serde_json::Value> = sris
            .iter()
            .enumerate()
            .map(|(i, sri)| {
                (
                    format!("node_modules/p{i}"),
                    serde_json::json!({"version": "1.0.0", "integrity": sri}),
                )
            })
            .collect();
        serde_json::json!({"lockfileVersion": 3, "packages": packages}).to_string()
    }

    /// A shared cache in a fresh directory (kept while the directory lives), and an npm lock
    /// naming one tarball of `bytes`, with that tarball's hash.
    fn cache_and_lock(bytes: &[u8]) -> (tempfile::TempDir, DownloadCache, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let cache = DownloadCache::new(dir.path().join("shared"));
        let (sri, hash) = sha512(bytes);
        (dir, cache, npm_lock(&[&sri]), hash)
    }

    /// cacache's path of the content whose SHA-512 is `hash`.
    fn npm_path(hash: &str) -> PathBuf {
        PathBuf::from("_cacache/content-v2/sha512")
            .join(&hash[..2])
            .join(&hash[2..4])
            .join(&hash[4..])
    }

    /// What an install leaves in the run's cache: `bytes` at `relative`.
    fn write(run_cache: &Path, relative: impl AsRef<Path>, bytes: &[u8]) {
        let path = run_cache.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// What a harvest of `run` after an install that was given nothing keeps and refuses.
    fn harvested(cache: &DownloadCache, layout: &Layout, lock: &str, run: &Path) -> CacheUse {
        cache
            .harvest(layout, lock, run, CacheUse::default())
            .unwrap()
    }

    fn counts(reused: usize, kept: usize, refused: usize) -> CacheUse {
        CacheUse {
            reused,
            kept,
            refused,
        }
    }

    #[test]
    fn a_downloaded_tarball_is_kept_and_given_to_the_next_run_of_the_same_lock() {
        let (dir, cache, lock, hash_a) = cache_and_lock(b"tarball a");

        let first = dir.path().join("run1");
        let used = cache.seed(&NPM, &lock, &first).unwrap();
        assert_eq!(used.reused, 0, "an empty cache gives nothing");
        write(&first, npm_path(&hash_a), b"tarball a");
        let (_, hash_other) = sha512(b"not in the lock");
        write(&first, npm_path(&hash_other), b"not in the lock");
        let used = cache.harvest(&NPM, &lock, &first, used).unwrap();
        assert_eq!(used, counts(0, 1, 0));
        assert!(
            !first.exists(),
            "the run's cache is gone before the tests run"
        );

        let second = dir.path().join("run2");
        let used = cache.seed(&NPM, &lock, &second).unwrap();
        assert_eq!(used.reused, 1);
        let seeded = second.join(npm_path(&hash_a));
        assert_eq!(std::fs::read(&seeded).unwrap(), b"tarball a");
        assert!(!std::fs::symlink_metadata(&seeded).unwrap().is_symlink());
        let used = cache.harvest(&NPM, &lock, &second, used).unwrap();
        assert_eq!(used, counts(1, 0, 0), "what was seeded is not kept twice");
    }

    #[test]
    fn a_file_planted_under_a_tarballs_name_is_refused() {
        let (dir, cache, lock, hash_real) = cache_and_lock(b"the real tarball");
        let run = dir.path().join("run");
        // An install script writes its own bytes where the real tarball would go.
        write(&run, npm_path(&hash_real), b"malicious bytes");
        let used = harvested(&cache, &NPM, &lock, &run);
        assert_eq!(used, counts(0, 0, 1));
        let next = dir.path().join("next");
        let used = cache.seed(&NPM, &lock, &next).unwrap();
        assert_eq!(used.reused, 0, "nothing planted reaches another job");
        assert!(!next.join("_cacache").exists());
    }

    #[test]
    fn a_kept_tarball_is_not_replaced_by_a_later_run() {
        let (dir, cache, lock, hash_a) = cache_and_lock(b"tarball a");
        let first = dir.path().join("run1");
        write(&first, npm_path(&hash_a), b"tarball a");
        harvested(&cache, &NPM, &lock, &first);
        // A later run's install overwrote its copy: the shared one stays as it was.
        let second = dir.path().join("run2");
        cache.seed(&NPM, &lock, &second).unwrap();
        write(&second, npm_path(&hash_a), b"overwritten");
        let used = harvested(&cache, &NPM, &lock, &second);
        assert_eq!(used, CacheUse::default());
        let third = dir.path().join("run3");
        cache.seed(&NPM, &lock, &third).unwrap();
        assert_eq!(
            std::fs::read(third.join(npm_path(&hash_a))).unwrap(),
            b"tarball a"
        );
    }

    #[test]
    fn links_index_entries_and_odd_names_in_the_run_cache_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DownloadCache::new(dir.path().join("shared"));
        let run = dir.path().join("run");
        let (sri_secret, hash) = sha512(b"secret");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        let link = run.join(npm_path(&hash));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let planted = "ab".repeat(64);
        write(&run, npm_path(&planted), b"x");
        write(&run, "_cacache/content-v2/sha512/zz/yy/not-a-hash", b"x");
        write(&run, "_cacache/index-v5/aa/bb/entry", b"forged");
        // A lock naming both: the link is never followed, "abab…" is not its bytes' hash.
        let lock = serde_json::json!({"packages": {
            "node_modules/a": {"integrity": sri_secret},
            "node_modules/b": {"integrity": format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode([0xab; 64]))},
        }})
        .to_string();
        let used = harvested(&cache, &NPM, &lock, &run);
        assert_eq!(used, counts(0, 0, 1));
        let next = dir.path().join("next");
        assert_eq!(cache.seed(&NPM, &lock, &next).unwrap(), CacheUse::default());
        assert!(!next.join("_cacache").exists());
    }

    #[test]
    fn yarn_keeps_a_mirror_tarball_by_its_bytes_and_seeds_it_under_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DownloadCache::new(dir.path().join("shared"));
        let (sri, _) = sha512(b"yarn tarball");
        let lock = format!(
            "# yarn lockfile v1\n\n\ntextfmt@^1.0.0:\n  version \"1.0.0\"\n  resolved \"REGISTRY/textfmt/-/textfmt-1.0.0.tgz\"\n  integrity {sri}\n"
        );
        let first = dir.path().join("run1");
        cache.seed(&YARN, &lock, &first).unwrap();
        assert!(
            first.join("mirror").is_dir(),
            "yarn needs its mirror to exist"
        );
        write(&first, "mirror/textfmt-1.0.0.tgz", b"yarn tarball");
        write(&first, "mirror/planted-1.0.0.tgz", b"an install script's");
        let used = harvested(&cache, &YARN, &lock, &first);
        assert_eq!(used, counts(0, 1, 1));

        let second = dir.path().join("run2");
        assert_eq!(cache.seed(&YARN, &lock, &second).unwrap().reused, 1);
        let mirrored = std::fs::read_dir(second.join("mirror"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>();
        assert_eq!(mirrored, ["textfmt-1.0.0.tgz"]);
        assert_eq!(
            std::fs::read(second.join("mirror/textfmt-1.0.0.tgz")).unwrap(),
            b"yarn tarball"
        );
    }

    #[test]
    fn poetry_keeps_an_archive_at_its_path_only_under_the_name_the_lock_gives_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DownloadCache::new(dir.path().join("shared"));
        let wheel = b"wheel bytes";
        let hash = hex(&Sha256::digest(wheel));
        let lock = format!(
            "[[package]]\nname = \"pyfmt\"\nversion = \"1.0.0\"\nfiles = [\n    {{file = \"pyfmt-1.0.0-py3-none-any.whl\", hash = \"sha256:{hash}\"}},\n    {{file = \"pyfmt-1.0.0.tar.gz\", hash = \"sha256:{}\"}},\n]\n",
            "0".repeat(64)
        );
        let link = format!("artifacts/0b/42/57/{}", "5".repeat(58));
        let at = format!("{link}/pyfmt-1.0.0-py3-none-any.whl");
        let run = dir.path().join("run1");
        write(&run, &at, wheel);
        // The right bytes under a name the lock gives another hash, and wrong bytes under the
        // wheel's name at another link: both refused. A file the lock does not name: passed over.
        write(&run, format!("{link}/pyfmt-1.0.0.tar.gz"), wheel);
        write(
            &run,
            format!(
                "artifacts/aa/bb/cc/{}/pyfmt-1.0.0-py3-none-any.whl",
                "d".repeat(58)
            ),
            b"built here",
        );
        write(&run, format!("{link}/other-1.0-py3-none-any.whl"), wheel);
        let used = harvested(&cache, &POETRY, &lock, &run);
        assert_eq!(used, counts(0, 1, 2));

        let next = dir.path().join("run2");
        assert_eq!(cache.seed(&POETRY, &lock, &next).unwrap().reused, 1);
        assert_eq!(std::fs::read(next.join(&at)).unwrap(), wheel);
        assert_eq!(walk(&next, POETRY.shape).unwrap(), [PathBuf::from(at)]);
    }

    #[test]
    fn a_download_copied_to_many_paths_is_kept_at_a_few() {
        let (dir, cache, _, _) = cache_and_lock(b"unused");
        let (sri, _) = sha512(b"tarball");
        let lock = format!("  integrity {sri}\n");
        let run = dir.path().join("run");
        for i in 0..10 {
            write(&run, format!("mirror/copy-{i}.tgz"), b"tarball");
        }
        let used = harvested(&cache, &YARN, &lock, &run);
        assert_eq!(used.kept, MAX_PATHS_PER_DIGEST);
    }
}
