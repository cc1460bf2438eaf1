//! The worker's cache of npm tarballs for the test step's installs, which code in the sandbox
//! cannot poison for other jobs.
//!
//! `npm ci` takes a tarball from its cache by the lock's `integrity` alone, so what the worker
//! keeps is content only: one file per tarball, named by the SHA-512 of its bytes, in cacache's
//! own layout (`content-v2/sha512/ab/cd/ef…`). Around each install:
//!
//! 1. [`DownloadCache::seed`] copies the tarballs the lock names, those the worker has, into a
//!    fresh cache inside the run's tree ([`RUN_DIR`]), where `npm_config_cache` points;
//! 2. the install runs in the sandbox and downloads only what was missing;
//! 3. [`DownloadCache::harvest`] takes back the lock's tarballs it downloaded, each file only
//!    when its bytes hash to its name, then removes the run's cache, before any test runs.
//!
//! The shared cache is never mounted into the sandbox, and a file an install script plants in
//! the run's cache under a tarball's name is refused (its name is not its hash). Index entries
//! (which URL maps to which hash) are never taken back: they could be forged, and `npm ci` does
//! not need them when the lock has the tarball's address (`resolved`); without one, npm fetches
//! the package's metadata and still takes the tarball from the cache.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha512};

/// The run's own cache, relative to the root of the tree the install runs in.
pub const RUN_DIR: &str = ".remediator-npm-cache";

/// Larger files are not kept (no npm tarball comes near it).
const MAX_TARBALL_BYTES: u64 = 512 * 1024 * 1024;

/// The worker's shared cache, under `root`.
#[derive(Debug, Clone)]
pub struct DownloadCache {
    root: PathBuf,
}

/// What one install did with the cache, for the test report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheUse {
    /// Tarballs of the lock the cache already had: not downloaded.
    pub reused: usize,
    /// Tarballs the install downloaded and the worker kept.
    pub kept: usize,
    /// Files in the run's cache whose bytes do not hash to their name: not kept.
    pub refused: usize,
}

impl DownloadCache {
    pub fn new(root: PathBuf) -> Self {
        DownloadCache { root }
    }

    /// Fills `run_cache` with the tarballs `lock_text` names that the cache holds.
    pub fn seed(&self, lock_text: &str, run_cache: &Path) -> io::Result<CacheUse> {
        let mut reused = 0;
        for hash in sha512_integrities(lock_text) {
            let shared = content_path(&self.root, &hash);
            if !shared.is_file() {
                continue;
            }
            let copy = content_path(&run_cache.join("_cacache"), &hash);
            if let Some(dir) = copy.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A copy, never a link: the run may write to what it was given.
            std::fs::copy(&shared, &copy)?;
            reused += 1;
        }
        Ok(CacheUse {
            reused,
            ..CacheUse::default()
        })
    }

    /// Keeps every tarball of `run_cache` that `lock_text` names and whose bytes hash to its
    /// name, then removes `run_cache`. Only the lock's own tarballs are kept, so the cache
    /// grows with what locks ask for, not with what an install script writes.
    pub fn harvest(
        &self,
        lock_text: &str,
        run_cache: &Path,
        mut used: CacheUse,
    ) -> io::Result<CacheUse> {
        let named = sha512_integrities(lock_text);
        let contents = run_cache.join("_cacache/content-v2/sha512");
        for (hash, file) in content_files(&contents)? {
            let shared = content_path(&self.root, &hash);
            if named.binary_search(&hash).is_err() || shared.is_file() {
                continue;
            }
            match hashes_to(&file, &hash)? {
                true => {
                    self.keep(&file, &shared)?;
                    used.kept += 1;
                }
                false => used.refused += 1,
            }
        }
        match std::fs::remove_dir_all(run_cache) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(used)
    }

    /// Copies `file` to `shared` through a temporary name, so no reader sees half a tarball.
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

/// The SHA-512 digests, in hex, of every `integrity` a package-lock or shrinkwrap names.
fn sha512_integrities(lock_text: &str) -> Vec<String> {
    let Ok(lock) = serde_json::from_str::<serde_json::Value>(lock_text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect_integrities(&lock, &mut found);
    found.sort();
    found.dedup();
    found
}

fn collect_integrities(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value.as_str()) {
                    ("integrity", Some(text)) => {
                        found.extend(text.split_whitespace().filter_map(sha512_hex))
                    }
                    _ => collect_integrities(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_integrities(item, found);
            }
        }
        _ => {}
    }
}

/// `sha512-<base64>` (an SRI hash) as hex; other algorithms are not cached.
fn sha512_hex(sri: &str) -> Option<String> {
    let encoded = sri.strip_prefix("sha512-")?.split('?').next()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    (bytes.len() == 64).then(|| hex(&bytes))
}

/// cacache's path of the content whose SHA-512 is `hash`.
fn content_path(base: &Path, hash: &str) -> PathBuf {
    base.join("content-v2/sha512")
        .join(&hash[..2])
        .join(&hash[2..4])
        .join(&hash[4..])
}

/// Every regular file at `contents/ab/cd/ef…` whose three names make a SHA-512 in hex.
fn content_files(contents: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for first in read_dir_or_empty(contents)? {
        for second in read_dir_or_empty(&first)? {
            for file in read_dir_or_empty(&second)? {
                let names = [&first, &second, &file].map(|p| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                let hash = names.concat();
                let regular = std::fs::symlink_metadata(&file)
                    .is_ok_and(|m| m.file_type().is_file() && m.len() <= MAX_TARBALL_BYTES);
                if regular && is_sha512_hex(&hash) && names[0].len() == 2 && names[1].len() == 2 {
                    files.push((hash, file));
                }
            }
        }
    }
    Ok(files)
}

/// The entries of `dir` that are directories or files, not links; none when it is not a
/// directory.
fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir());
    if !is_dir {
        return Ok(Vec::new());
    }
    std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect()
}

fn is_sha512_hex(text: &str) -> bool {
    text.len() == 128 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether the bytes of `file` have the SHA-512 `hash`.
fn hashes_to(file: &Path, hash: &str) -> io::Result<bool> {
    let mut hasher = Sha512::new();
    let mut reader = std::fs::File::open(file)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()) == hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sri(bytes: &[u8]) -> (String, String) {
        let digest = Sha512::digest(bytes);
        let sri = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        (sri, hex(&digest))
    }

    fn lock_naming(sris: &[&str]) -> String {
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

    /// A shared cache in a fresh directory (kept while the directory lives), and a lock naming
    /// one tarball of `bytes`, with that tarball's hash.
    fn cache_and_lock(bytes: &[u8]) -> (tempfile::TempDir, DownloadCache, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let cache = DownloadCache::new(dir.path().join("shared"));
        let (sri, hash) = sri(bytes);
        (dir, cache, lock_naming(&[&sri]), hash)
    }

    /// What an install leaves in the run's cache: `bytes` under the name `hash`.
    fn downloaded(run_cache: &Path, hash: &str, bytes: &[u8]) {
        let path = content_path(&run_cache.join("_cacache"), hash);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_downloaded_tarball_is_kept_and_given_to_the_next_run_of_the_same_lock() {
        let (dir, cache, lock, hash_a) = cache_and_lock(b"tarball a");

        let first = dir.path().join("run1");
        let used = cache.seed(&lock, &first).unwrap();
        assert_eq!(used.reused, 0, "an empty cache gives nothing");
        downloaded(&first, &hash_a, b"tarball a");
        let (_, hash_other) = sri(b"not in the lock");
        downloaded(&first, &hash_other, b"not in the lock");
        let used = cache.harvest(&lock, &first, used).unwrap();
        assert_eq!(
            used,
            CacheUse {
                reused: 0,
                kept: 1,
                refused: 0
            }
        );
        assert!(
            !first.exists(),
            "the run's cache is gone before the tests run"
        );

        let second = dir.path().join("run2");
        let used = cache.seed(&lock, &second).unwrap();
        assert_eq!(used.reused, 1);
        let seeded = content_path(&second.join("_cacache"), &hash_a);
        assert_eq!(std::fs::read(seeded).unwrap(), b"tarball a");
    }

    #[test]
    fn a_file_planted_under_a_tarballs_name_is_refused() {
        let (dir, cache, lock, hash_real) = cache_and_lock(b"the real tarball");
        let run = dir.path().join("run");
        // An install script writes its own bytes where the real tarball would go.
        downloaded(&run, &hash_real, b"malicious bytes");
        let used = cache.harvest(&lock, &run, CacheUse::default()).unwrap();
        assert_eq!(
            used,
            CacheUse {
                reused: 0,
                kept: 0,
                refused: 1
            }
        );
        let next = dir.path().join("next");
        let used = cache.seed(&lock, &next).unwrap();
        assert_eq!(used.reused, 0, "nothing planted reaches another job");
        assert!(!next.join("_cacache").exists());
    }

    #[test]
    fn a_kept_tarball_is_not_replaced_by_a_later_run() {
        let (dir, cache, lock, hash_a) = cache_and_lock(b"tarball a");
        let first = dir.path().join("run1");
        downloaded(&first, &hash_a, b"tarball a");
        cache.harvest(&lock, &first, CacheUse::default()).unwrap();
        // A later run's install overwrote its copy: the shared one stays as it was.
        let second = dir.path().join("run2");
        cache.seed(&lock, &second).unwrap();
        downloaded(&second, &hash_a, b"overwritten");
        let used = cache.harvest(&lock, &second, CacheUse::default()).unwrap();
        assert_eq!(used, CacheUse::default());
        assert_eq!(
            std::fs::read(content_path(&cache.root, &hash_a)).unwrap(),
            b"tarball a"
        );
    }

    #[test]
    fn links_index_entries_and_odd_names_in_the_run_cache_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DownloadCache::new(dir.path().join("shared"));
        let run = dir.path().join("run");
        let (sri_secret, hash) = sri(b"secret");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        let link = content_path(&run.join("_cacache"), &hash);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let planted = "ab".repeat(64);
        downloaded(&run, &planted, b"x");
        let odd = run.join("_cacache/content-v2/sha512/zz/yy/not-a-hash");
        std::fs::create_dir_all(odd.parent().unwrap()).unwrap();
        std::fs::write(&odd, b"x").unwrap();
        let index = run.join("_cacache/index-v5/aa/bb/entry");
        std::fs::create_dir_all(index.parent().unwrap()).unwrap();
        std::fs::write(index, b"forged").unwrap();
        // A lock naming both: the link is never followed, "abab…" is not its bytes' hash.
        let lock = serde_json::json!({"packages": {
            "node_modules/a": {"integrity": sri_secret},
            "node_modules/b": {"integrity": format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode([0xab; 64]))},
        }})
        .to_string();
        let used = cache.harvest(&lock, &run, CacheUse::default()).unwrap();
        assert_eq!(
            used,
            CacheUse {
                reused: 0,
                kept: 0,
                refused: 1
            }
        );
        assert!(!cache.root.join("index-v5").exists());
        assert!(!content_path(&cache.root, &hash).exists());
    }

    #[test]
    fn integrities_are_read_from_every_lock_shape_and_other_algorithms_ignored() {
        let (sri_a, hash_a) = sri(b"a");
        let (sri_b, hash_b) = sri(b"b");
        let v1 = serde_json::json!({
            "lockfileVersion": 1,
            "dependencies": {
                "a": {"version": "1.0.0", "integrity": format!("{sri_a} sha1-deadbeef")},
                "b": {"dependencies": {"c": {"integrity": sri_b}}},
                "d": {"integrity": "sha1-deadbeef"}
            }
        });
        let mut want = vec![hash_a, hash_b];
        want.sort();
        assert_eq!(sha512_integrities(&v1.to_string()), want);
        assert!(sha512_integrities("not json").is_empty());
        assert_eq!(sha512_hex("sha512-not-base64!"), None);
    }
}
