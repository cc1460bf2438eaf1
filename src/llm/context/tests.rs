//! Context selection over real files in temporary directories.

use std::fs;
use std::path::Path;

use super::*;

fn facts(package: &str) -> VulnerabilityFacts {
    VulnerabilityFacts {
        id: "RUSTSEC-2024-0001".to_owned(),
        aliases: vec![],
        severity: "HIGH".to_owned(),
        summary: "s".to_owned(),
        package: package.to_owned(),
        ecosystem: crate::ecosystem::Ecosystem::CratesIo,
        installed_version: "0.8.1".to_owned(),
        fixed_versions: vec!["0.8.4".to_owned()],
        target_version: None,
    }
}

fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// A temporary tree holding each of `files` (path, content).
fn repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        write(dir.path(), rel, content);
    }
    dir
}

fn paths(files: &[ContextFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

fn rust_repo() -> tempfile::TempDir {
    let dir = repo_with(&[
        (
            "Cargo.toml",
            "[package]\nname = \"app\"\n\n[dependencies]\nserde_yaml = \"0.8.1\"\nserde = \"1\"\n",
        ),
        (
            "Cargo.lock",
            "[[package]]\nname = \"serde_yaml\"\nversion = \"0.8.1\"\n",
        ),
        ("tools/Cargo.toml", "[dependencies]\nserde = \"1\"\n"),
        (
            "crates/inner/Cargo.toml",
            "[dependencies]\nserde_yaml = { workspace = true }\n",
        ),
        (
            "src/small.rs",
            "fn f() { serde_yaml::from_str::<u8>(\"1\"); }\n",
        ),
        ("src/other.rs", "use serde::Deserialize;\n"),
        ("src/mention_in_comment.rs", "// serde_yaml is nice\n"),
        ("README.md", "uses serde_yaml\n"),
        ("node_modules/x/package.json", "{\"serde_yaml\": 1}\n"),
        ("target/debug/Cargo.toml", "serde_yaml = \"0.8.1\"\n"),
        (".git/Cargo.toml", "serde_yaml = \"0.8.1\"\n"),
    ]);
    let root = dir.path();
    write(
        root,
        "src/big.rs",
        format!("use serde_yaml::Value;\n{}", "// filler\n".repeat(50)),
    );
    write(root, "src/blob.rs", b"use serde_yaml;\0\x01\x02");
    write(root, "src/latin1.rs", b"use serde_yaml; // caf\xe9\n");
    let mut huge = String::from("use serde_yaml::Value;\n");
    huge.push_str(&"x".repeat(1024 * 1024 + 1));
    write(root, "src/huge.rs", huge);
    // Links are skipped, whether to a file or to a directory.
    fs::create_dir_all(root.join("linked")).unwrap();
    std::os::unix::fs::symlink(root.join("Cargo.toml"), root.join("linked/Cargo.toml")).unwrap();
    std::os::unix::fs::symlink(root.join("src"), root.join("linked/src")).unwrap();
    dir
}

#[test]
fn picks_manifests_then_locks_then_importing_sources() {
    let dir = rust_repo();
    let files = select_context(&DirFiles(dir.path()), &facts("serde_yaml"), 48_000).unwrap();
    assert_eq!(
        paths(&files),
        [
            "Cargo.toml",
            "crates/inner/Cargo.toml",
            "Cargo.lock",
            "src/small.rs",
            "src/big.rs"
        ]
    );
    assert!(files.iter().all(|f| !f.truncated));
    assert_eq!(
        files[0].content,
        fs::read_to_string(dir.path().join("Cargo.toml")).unwrap()
    );
}

#[test]
fn the_result_is_deterministic() {
    let dir = rust_repo();
    let first = select_context(&DirFiles(dir.path()), &facts("serde_yaml"), 48_000).unwrap();
    let second = select_context(&DirFiles(dir.path()), &facts("serde_yaml"), 48_000).unwrap();
    assert_eq!(first, second);
}

#[test]
fn the_budget_stops_the_selection() {
    let dir = rust_repo();
    let all = select_context(&DirFiles(dir.path()), &facts("serde_yaml"), 48_000).unwrap();
    // Room for everything but the last (biggest) source.
    let budget = all[..4]
        .iter()
        .map(|f| cost(&f.path, &f.content))
        .sum::<usize>()
        + 150;
    let files = select_context(&DirFiles(dir.path()), &facts("serde_yaml"), budget).unwrap();
    assert_eq!(
        paths(&files),
        [
            "Cargo.toml",
            "crates/inner/Cargo.toml",
            "Cargo.lock",
            "src/small.rs"
        ]
    );
    let spent: usize = files.iter().map(|f| cost(&f.path, &f.content)).sum();
    assert!(spent <= budget, "{spent}");
}

#[test]
fn a_big_lock_file_is_cut_to_windows_around_the_package() {
    let dir = repo_with(&[("Cargo.toml", "[dependencies]\nserde_yaml = \"0.8.1\"\n")]);
    let root = dir.path();
    let mut lock = String::from("version = 3\n\n");
    for i in 0..2000 {
        if i == 1000 {
            lock.push_str(
                "[[package]]\nname = \"serde_yaml\"\nversion = \"0.8.1\"\nsource = \"local-registry+file:///srv/test-registry\"\nchecksum = \"abc\"\ndependencies = [\n \"indexmap\",\n]\n\n",
            );
        }
        let deps = if i % 500 == 7 {
            " \"serde_yaml\",\n"
        } else {
            ""
        };
        lock.push_str(&format!(
            "[[package]]\nname = \"crate{i}\"\nversion = \"1.0.{i}\"\ndependencies = [\n{deps}]\n\n"
        ));
    }
    write(root, "Cargo.lock", &lock);

    let budget = 2_000;
    let files = select_context(&DirFiles(root), &facts("serde_yaml"), budget).unwrap();
    assert_eq!(paths(&files), ["Cargo.toml", "Cargo.lock"]);
    let excerpt = &files[1];
    assert!(excerpt.truncated);
    assert!(
        excerpt
            .content
            .contains("[[package]]\nname = \"serde_yaml\"\nversion = \"0.8.1\"\nsource = ")
    );
    assert!(excerpt.content.contains("checksum = \"abc\""));
    assert!(excerpt.content.contains("omitted) ..."));
    assert!(excerpt.content.starts_with("... (lines 1-"));
    let spent: usize = files.iter().map(|f| cost(&f.path, &f.content)).sum();
    assert!(spent <= budget, "{spent}");

    // With room to spare, the references from other packages are shown too.
    let files = select_context(&DirFiles(root), &facts("serde_yaml"), 12_000).unwrap();
    let excerpt = &files[1].content;
    assert!(excerpt.matches("omitted) ...").count() >= 4, "{excerpt}");
    assert!(excerpt.contains("name = \"crate7\""), "{excerpt}");
}

#[test]
fn maven_coordinates_match_artifact_and_java_imports() {
    let dir = repo_with(&[
        (
            "pom.xml",
            "<dependency>\n<groupId>org.apache.logging.log4j</groupId>\n<artifactId>log4j-core</artifactId>\n<version>2.14.1</version>\n</dependency>\n",
        ),
        (
            "src/main/java/App.java",
            "import org.apache.logging.log4j.Logger;\nclass App {}\n",
        ),
        (
            "src/main/java/Other.java",
            "import org.apache.logging.log4j2.Thing;\n",
        ),
    ]);
    let root = dir.path();
    let files = select_context(
        &DirFiles(root),
        &facts("org.apache.logging.log4j:log4j-core"),
        48_000,
    )
    .unwrap();
    assert_eq!(paths(&files), ["pom.xml", "src/main/java/App.java"]);
}

#[test]
fn go_modules_and_npm_names_match_whole_names_only() {
    let dir = repo_with(&[
        ("go.mod", "module x\n\nrequire golang.org/x/net v0.1.0\n"),
        ("go.sum", "golang.org/x/net v0.1.0 h1:abc=\n"),
        (
            "main.go",
            "package main\n\nimport (\n\t\"golang.org/x/net/http2\"\n)\n",
        ),
        (
            "web/package.json",
            "{\"dependencies\": {\"lodash.merge\": \"1\"}}\n",
        ),
    ]);
    let root = dir.path();
    let files = select_context(&DirFiles(root), &facts("golang.org/x/net"), 48_000).unwrap();
    assert_eq!(paths(&files), ["go.mod", "go.sum", "main.go"]);

    let files = select_context(&DirFiles(root), &facts("lodash"), 48_000).unwrap();
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn python_names_match_across_dash_and_underscore_and_case() {
    let dir = repo_with(&[
        ("requirements-dev.txt", "Typing_Extensions==4.0\n"),
        ("requirements.txt", "requests==2.0\n"),
    ]);
    let root = dir.path();
    let files = select_context(&DirFiles(root), &facts("typing-extensions"), 48_000).unwrap();
    assert_eq!(paths(&files), ["requirements-dev.txt"]);
}

#[test]
fn find_name_respects_name_boundaries() {
    assert_eq!(find_name("serde = \"1\"", "serde"), Some(0));
    assert_eq!(find_name("serde_json = \"1\"", "serde"), None);
    assert_eq!(
        find_name("serde_json = \"1\"\nserde = 1", "serde"),
        Some(17)
    );
    assert_eq!(find_name("\"lodash.merge\": \"1\"", "lodash"), None);
    assert_eq!(find_name("require('lodash/fp')", "lodash"), Some(9));
    assert_eq!(find_name("yarn-lodash", "lodash"), None);
}

#[test]
fn an_unreadable_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        select_context(&DirFiles(&dir.path().join("missing")), &facts("x"), 1000).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
}

/// A [`DirFiles`] that counts the files read whole, and says where a file is "stored" (the
/// reverse of the tree's order), to see the batches read in storage order.
struct Counted<'a> {
    dir: DirFiles<'a>,
    reads: std::cell::RefCell<Vec<String>>,
}

impl RepoFiles for Counted<'_> {
    fn files(&self) -> io::Result<Vec<String>> {
        self.dir.files()
    }
    fn read(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        self.reads.borrow_mut().push(path.to_owned());
        self.dir.read(path, max_bytes)
    }
    fn size(&self, path: &str) -> io::Result<Option<u64>> {
        self.dir.size(path)
    }
    fn storage_key(&self, path: &str) -> Option<(usize, u64)> {
        let n: u64 = path
            .trim_start_matches("src/f")
            .trim_end_matches(".rs")
            .parse()
            .ok()?;
        Some((0, u64::MAX - n))
    }
}

/// 1,000 sources that import the package, bigger as the tree goes on, except the last ten,
/// which are the smallest.
fn many_sources() -> tempfile::TempDir {
    let dir = repo_with(&[("Cargo.toml", "[dependencies]\nserde_yaml = \"0.8\"\n")]);
    for n in 0..1000 {
        let padding = if n >= 990 { 0 } else { 10 + n };
        let body = format!("use serde_yaml::Value;\n// {}\n", "x".repeat(padding));
        write(dir.path(), &format!("src/f{n:04}.rs"), body);
    }
    dir
}

#[test]
fn sources_are_read_smallest_first_and_the_reading_stops_when_the_budget_is_full() {
    let dir = many_sources();
    let counted = Counted {
        dir: DirFiles(dir.path()),
        reads: Default::default(),
    };
    let files = select_context(&counted, &facts("serde_yaml"), 3_000).unwrap();
    let chosen = paths(&files);
    assert_eq!(chosen[0], "Cargo.toml");
    // The ten smallest come last in the tree and first in the context.
    let smallest: Vec<String> = (990..1000).map(|n| format!("src/f{n:04}.rs")).collect();
    assert_eq!(
        chosen[1..11],
        smallest.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        chosen.len() < 40,
        "the budget holds a few dozen: {chosen:?}"
    );
    let reads = counted.reads.borrow();
    assert!(
        reads.len() <= 1 + BATCH_FILES,
        "one batch was enough, not all 1,000: {}",
        reads.len()
    );
    // Within the batch, in storage order (here the reverse of the tree's).
    let batch: Vec<&String> = reads.iter().skip(1).collect();
    assert!(batch.windows(2).all(|w| w[0] > w[1]), "{batch:?}");
}

#[test]
fn reading_in_batches_chooses_what_reading_everything_would() {
    let dir = many_sources();
    for budget in [500, 3_000, 20_000, 200_000] {
        let batched = select_context(&DirFiles(dir.path()), &facts("serde_yaml"), budget).unwrap();
        // The choice as a plain rule: every importing source, smallest first, while it fits.
        let mut all: Vec<(usize, String, String)> = (0..1000)
            .map(|n| {
                let path = format!("src/f{n:04}.rs");
                let content = fs::read_to_string(dir.path().join(&path)).unwrap();
                (content.len(), path, content)
            })
            .collect();
        all.sort();
        let mut remaining = budget - cost("Cargo.toml", "[dependencies]\nserde_yaml = \"0.8\"\n");
        let mut expected = vec!["Cargo.toml".to_owned()];
        for (_, path, content) in all {
            if remaining < MIN_USEFUL_CHARS || cost(&path, &content) > remaining {
                break;
            }
            remaining -= cost(&path, &content);
            expected.push(path);
        }
        assert_eq!(paths(&batched), expected, "budget {budget}");
    }
}
