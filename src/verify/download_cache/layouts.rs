//! Each package manager's part of the download cache, as data: the lock files it reads, the
//! digests a lock records (algorithm and hex), where the tool keeps a download in its own cache
//! (the shape of the paths the harvest looks at), and the variable that points the tool at the
//! run's cache. [`of`] finds the layout of a test convention; adding a tool is a constant here
//! and a line in [`LAYOUTS`].

use std::path::Path;

use base64::Engine;

use crate::verify::conventions::{TestConvention, js, poetry};

/// The hash a lock records for a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

/// One name in a path the tool writes, from the run cache's root.
#[derive(Debug, Clone, Copy)]
pub enum Segment {
    /// This very name.
    Exact(&'static str),
    /// Lowercase hex of this length.
    Hex(usize),
    /// Any name.
    Any,
}

impl Segment {
    pub fn matches(self, name: &str) -> bool {
        match self {
            Segment::Exact(exact) => name == exact,
            Segment::Hex(len) => {
                name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }
            Segment::Any => !name.is_empty(),
        }
    }
}

/// A download a lock records: its digest (lowercase hex) and, when the lock says, the name of
/// its file (a file of another name is not taken for it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Named {
    pub digest: String,
    pub file: Option<String>,
}

/// One package manager's part of the cache; see the module documentation.
#[derive(Debug)]
pub struct Layout {
    /// The test convention whose installs use it.
    pub convention: &'static TestConvention,
    /// The lock files it reads, in the order the tool prefers them.
    pub lock_files: &'static [&'static str],
    /// Its directory in the shared cache: one per tool, as each hashes with one algorithm.
    pub store: &'static str,
    pub algorithm: Algorithm,
    /// The downloads a lock's text records (none: the cache is not used).
    pub named: fn(&str) -> Vec<Named>,
    /// The paths, under the run's cache, of the files the tool downloads.
    pub shape: &'static [Segment],
    /// The variable that points the tool at a directory of the run's cache, and that
    /// directory (relative to the run's cache; it is made before the install).
    pub variable: (&'static str, &'static str),
}

/// npm's cacache: a tarball is `_cacache/content-v2/sha512/ab/cd/ef…`, by its SHA-512; `npm
/// ci` takes it by the lock's `integrity` alone.
pub const NPM: Layout = Layout {
    convention: &js::NPM,
    lock_files: &["package-lock.json", "npm-shrinkwrap.json"],
    store: "npm-sha512",
    algorithm: Algorithm::Sha512,
    named: npm_lock,
    shape: &[
        Segment::Exact("_cacache"),
        Segment::Exact("content-v2"),
        Segment::Exact("sha512"),
        Segment::Hex(2),
        Segment::Hex(2),
        Segment::Hex(124),
    ],
    variable: ("npm_config_cache", ""),
};

/// yarn 1's offline mirror: `yarn install` takes a tarball from the mirror when a file of the
/// name it gives the lock's `resolved` address is there (checking the lock's `integrity`), and
/// puts what it downloads there. Yarn 2+ locks record no `integrity`: [`BERRY`] is theirs.
pub const YARN: Layout = Layout {
    convention: &js::YARN,
    lock_files: &["yarn.lock"],
    store: "yarn-sha512",
    algorithm: Algorithm::Sha512,
    named: yarn_lock,
    shape: &[Segment::Exact("mirror"), Segment::Any],
    variable: ("YARN_YARN_OFFLINE_MIRROR", "mirror"),
};

/// yarn 2+'s global cache (`GLOBAL_FOLDER/cache/NAME-npm-VERSION-HASH-KEY.zip`): the lock's
/// `checksum` is the SHA-512 of that zip, which yarn makes from the registry's tarball, and
/// `yarn install` takes a zip of the lock's checksum from there without asking the registry.
/// A project that turns the global cache off (`enableGlobalCache: false`) keeps its own.
pub const BERRY: Layout = Layout {
    convention: &js::YARN,
    lock_files: &["yarn.lock"],
    store: "yarn-berry-sha512",
    algorithm: Algorithm::Sha512,
    named: berry_lock,
    shape: &[Segment::Exact("cache"), Segment::Any],
    variable: ("YARN_GLOBAL_FOLDER", ""),
};

/// Poetry's artifact cache: a download is `artifacts/ab/cd/ef/…/FILE` under a hash of its
/// address (which the lock does not record, so the shared cache keeps the path it was found
/// at); Poetry checks the file against the lock's hash before installing it.
pub const POETRY: Layout = Layout {
    convention: &poetry::POETRY,
    lock_files: &["poetry.lock"],
    store: "poetry-sha256",
    algorithm: Algorithm::Sha256,
    named: poetry_lock,
    shape: &[
        Segment::Exact("artifacts"),
        Segment::Hex(2),
        Segment::Hex(2),
        Segment::Hex(2),
        Segment::Hex(58),
        Segment::Any,
    ],
    variable: ("POETRY_CACHE_DIR", ""),
};

pub const LAYOUTS: &[&Layout] = &[&NPM, &YARN, &BERRY, &POETRY];

/// The layouts of the installs of `convention` (yarn's two: its lock says which applies).
pub fn of(convention: &TestConvention) -> impl Iterator<Item = &'static Layout> {
    LAYOUTS
        .iter()
        .copied()
        .filter(move |layout| layout.convention == convention)
}

impl Layout {
    /// The downloads the file at `relative` (its path in the run's cache) may be: those the
    /// lock names by the file's name, and those it names by digest alone.
    pub fn claimed<'a>(named: &'a [Named], relative: &Path) -> Vec<&'a Named> {
        let file = relative.file_name().map(|n| n.to_string_lossy());
        named
            .iter()
            .filter(|n| {
                n.file
                    .as_deref()
                    .is_none_or(|name| file.as_deref() == Some(name))
            })
            .collect()
    }
}

/// The SHA-512s of every `integrity` a package-lock or shrinkwrap names.
fn npm_lock(lock_text: &str) -> Vec<Named> {
    let Ok(lock) = serde_json::from_str::<serde_json::Value>(lock_text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect_integrities(&lock, &mut found);
    found.sort();
    found.dedup();
    // cacache names a tarball by its hash: the rest of it, under two directories.
    found
        .into_iter()
        .map(|digest| Named {
            file: digest.get(4..).map(str::to_owned),
            digest,
        })
        .collect()
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

/// The SHA-512s of a yarn 1 lock's `integrity` lines; none for a yarn 2+ lock (its
/// `checksum`s hash the archives yarn makes, not the registry's).
fn yarn_lock(lock_text: &str) -> Vec<Named> {
    let found = lock_text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("integrity "))
        .flat_map(|value| value.trim().trim_matches('"').split_whitespace())
        .filter_map(sha512_hex)
        .collect();
    anonymous(found)
}

/// The SHA-512s of a yarn 2+ lock's `checksum`s (`checksum: 10c0/<hex>`, or `<hex>` alone in
/// older locks); none for a yarn 1 lock.
fn berry_lock(lock_text: &str) -> Vec<Named> {
    let found = lock_text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("checksum: "))
        .map(|value| value.trim().trim_matches('"'))
        .map(|value| {
            value
                .rsplit('/')
                .next()
                .unwrap_or(value)
                .to_ascii_lowercase()
        })
        .filter(|hex| Segment::Hex(128).matches(hex))
        .collect();
    anonymous(found)
}

/// The SHA-256s of a Poetry lock's `files` (`{file = "…", hash = "sha256:…"}`), each with its
/// file's name: every lock version keeps them in such inline tables.
fn poetry_lock(lock_text: &str) -> Vec<Named> {
    let Ok(lock) = lock_text.parse::<toml_edit::DocumentMut>() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect_files(lock.as_item(), &mut found);
    found.sort();
    found.dedup();
    found
}

fn collect_files(item: &toml_edit::Item, found: &mut Vec<Named>) {
    use toml_edit::Item;
    match item {
        Item::Table(table) => table
            .iter()
            .for_each(|(_, item)| collect_files(item, found)),
        Item::ArrayOfTables(tables) => tables.iter().for_each(|table| {
            table
                .iter()
                .for_each(|(_, item)| collect_files(item, found))
        }),
        Item::Value(value) => collect_file_values(value, found),
        Item::None => {}
    }
}

fn collect_file_values(value: &toml_edit::Value, found: &mut Vec<Named>) {
    use toml_edit::Value;
    match value {
        Value::InlineTable(table) => {
            let file = table.get("file").and_then(Value::as_str);
            let hash = table.get("hash").and_then(Value::as_str);
            if let (Some(file), Some(digest)) = (file, hash.and_then(sha256_hex)) {
                found.push(Named {
                    digest,
                    file: Some(file.to_owned()),
                });
            }
            table
                .iter()
                .for_each(|(_, v)| collect_file_values(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_file_values(v, found)),
        _ => {}
    }
}

/// Digests with no file name, sorted, each once.
fn anonymous(mut digests: Vec<String>) -> Vec<Named> {
    digests.sort();
    digests.dedup();
    digests
        .into_iter()
        .map(|digest| Named { digest, file: None })
        .collect()
}

/// `sha512-<base64>` (an SRI hash) as hex; other algorithms are not cached.
fn sha512_hex(sri: &str) -> Option<String> {
    let encoded = sri.strip_prefix("sha512-")?.split('?').next()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    (bytes.len() == 64).then(|| super::hex(&bytes))
}

/// `sha256:<hex>` as lowercase hex.
fn sha256_hex(hash: &str) -> Option<String> {
    let hex = hash.strip_prefix("sha256:")?.to_ascii_lowercase();
    Segment::Hex(64).matches(&hex).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sri(bytes: &[u8]) -> (String, String) {
        use sha2::Digest;
        let digest = sha2::Sha512::digest(bytes);
        let sri = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        (sri, super::super::hex(&digest))
    }

    fn digests(named: &[Named]) -> Vec<&str> {
        named.iter().map(|n| n.digest.as_str()).collect()
    }

    #[test]
    fn npm_integrities_are_read_from_every_lock_shape_and_other_algorithms_ignored() {
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
        let mut want = vec![hash_a.as_str(), hash_b.as_str()];
        want.sort();
        let named = npm_lock(&v1.to_string());
        assert_eq!(digests(&named), want);
        // cacache's file name for a tarball is the rest of its hash.
        assert_eq!(named[0].file.as_deref(), Some(&want[0][4..]));
        assert!(npm_lock("not json").is_empty());
        assert_eq!(sha512_hex("sha512-not-base64!"), None);
    }

    #[test]
    fn yarn_integrities_and_berry_checksums_are_read_each_from_its_own_lock() {
        let (sri_a, hash_a) = sri(b"a");
        let (sri_b, hash_b) = sri(b"b");
        let lock = format!(
            "# yarn lockfile v1\n\n\n\"@scope/a@^1.0.0\", \"@scope/a@^1.1.0\":\n  version \"1.1.0\"\n  resolved \"REGISTRY/@scope/a/-/a-1.1.0.tgz#0123\"\n  integrity {sri_a}\n  dependencies:\n    b \"^2.0.0\"\n\nb@^2.0.0:\n  version \"2.0.0\"\n  integrity \"{sri_b} sha1-deadbeef\"\n\nold@^1.0.0:\n  integrity sha1-deadbeef\n"
        );
        let mut want = vec![hash_a.as_str(), hash_b.as_str()];
        want.sort();
        let named = yarn_lock(&lock);
        assert_eq!(digests(&named), want);
        assert!(named.iter().all(|n| n.file.is_none()));
        let berry = format!(
            "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n\"b@npm:^2.0.0\":\n  version: 2.0.0\n  resolution: \"b@npm:2.0.0\"\n  checksum: 10c0/{hash_b}\n  languageName: node\n  linkType: hard\n\n\"c@npm:^1.0.0\":\n  checksum: {}\n\n\"d@npm:^1.0.0\":\n  checksum: 10c0/abcdef\n",
            hash_a.to_ascii_uppercase()
        );
        assert!(yarn_lock(&berry).is_empty());
        assert_eq!(digests(&berry_lock(&berry)), want);
        assert!(berry_lock(&lock).is_empty(), "a yarn 1 lock is not Berry's");
    }

    #[test]
    fn poetry_hashes_are_read_with_their_file_names_in_both_lock_versions() {
        let (a, b) = ("a".repeat(64), "B".repeat(64));
        let current = format!(
            "[[package]]\nname = \"pyfmt\"\nversion = \"1.0.0\"\nfiles = [\n    {{file = \"pyfmt-1.0.0-py3-none-any.whl\", hash = \"sha256:{a}\"}},\n    {{file = \"pyfmt-1.0.0.tar.gz\", hash = \"md5:{a}\"}},\n]\n\n[metadata]\nlock-version = \"2.1\"\ncontent-hash = \"{a}\"\n"
        );
        assert_eq!(
            poetry_lock(&current),
            [Named {
                digest: a.clone(),
                file: Some("pyfmt-1.0.0-py3-none-any.whl".to_owned())
            }]
        );
        let old = format!(
            "[[package]]\nname = \"pyfmt\"\nversion = \"1.0.0\"\n\n[metadata]\nlock-version = \"1.1\"\n\n[metadata.files]\npyfmt = [\n    {{file = \"pyfmt-1.0.0.tar.gz\", hash = \"sha256:{b}\"}},\n]\n"
        );
        assert_eq!(
            poetry_lock(&old),
            [Named {
                digest: b.to_ascii_lowercase(),
                file: Some("pyfmt-1.0.0.tar.gz".to_owned())
            }]
        );
        assert!(poetry_lock("not = [toml").is_empty());
    }

    #[test]
    fn each_cached_convention_has_its_layout_and_others_none() {
        use crate::verify::conventions::{cargo, uv};
        let stores = |c| of(c).map(|l| l.store).collect::<Vec<_>>();
        assert_eq!(stores(&js::NPM), ["npm-sha512"]);
        assert_eq!(stores(&js::YARN), ["yarn-sha512", "yarn-berry-sha512"]);
        assert_eq!(stores(&poetry::POETRY), ["poetry-sha256"]);
        assert!(
            [&js::PNPM, &uv::UV, &cargo::CARGO]
                .iter()
                .all(|c| stores(c).is_empty())
        );
        assert!(Segment::Hex(2).matches("0f") && !Segment::Hex(2).matches("0F"));
        assert!(!Segment::Any.matches(""));
    }
}
