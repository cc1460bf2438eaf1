//! The git layer against a real git server (`git http-backend` over smart HTTP with basic auth):
//! clone, edit, commit, push, and the failures a worker must classify.

mod support;

use std::path::{Path, PathBuf};

use remediator::git::{self, CommitSpec, GitAuth, GitError, PushOutcome, ScratchDir};
use remediator::patch::ExistingEntry;
use secrecy::SecretString;
use support::git_server::{GitServer, RepoEntry};

const USER: &str = "forge-bot";
const PASSWORD: &str = "s3cret-token-value";
const BRANCH: &str = "remediator/fix-cve-2024-0001";

fn auth(password: &str) -> GitAuth {
    GitAuth {
        username: USER.to_string(),
        token: Some(SecretString::from(password)),
        ssh_key_file: None,
    }
}

fn spec(message: &str) -> CommitSpec<'_> {
    CommitSpec {
        branch: BRANCH,
        message,
        author_name: "Remediator",
        author_email: "remediator@example.com",
    }
}

/// Runs blocking git work off the runtime, as the worker does.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("blocking task")
}

async fn start_with_app() -> (GitServer, String) {
    let server = GitServer::start(USER, PASSWORD).await;
    let url = server.create_repo(
        "app",
        "main",
        &[
            ("README.md", "hello\n"),
            ("Cargo.toml", "[dependencies]\nserde = \"1.0.100\"\n"),
        ],
    );
    (server, url)
}

/// Clones `url`'s `main` into a new scratch dir, applies `files`, commits with `message` and
/// pushes; returns the commit and the outcome.
fn clone_edit_push(
    url: &str,
    files: &[(&str, &str)],
    message: &str,
) -> Result<(git2::Oid, PushOutcome), GitError> {
    let parent = tempfile::tempdir().expect("parent dir");
    let scratch = ScratchDir::new_in(parent.path())?;
    let repo =
        git::clone_default_branch(url, "main", &scratch.path().join("repo"), &auth(PASSWORD))?;
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    git::write_files(&repo, &files)?;
    let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    let commit = git::commit_files(&repo, &paths, &spec(message))?;
    let outcome = git::push_branch(&repo, BRANCH, commit, &auth(PASSWORD))?;
    Ok((commit, outcome))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_clone_over_smart_http_with_basic_auth() {
    let (server, url) = start_with_app().await;
    // A second commit on main, so a full clone would have two.
    server.push_commit("app", "main", &[("README.md", "hello again\n")], "second");
    let clone_url = url.clone();
    let (shallow, readme, head_branch, config, stored_url, commits) = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let dest = parent.path().join("clone");
        let repo =
            git::clone_default_branch(&clone_url, "main", &dest, &auth(PASSWORD)).expect("clone");
        let readme = git::read_file(&repo, "README.md").expect("read");
        let head = repo
            .head()
            .expect("head")
            .shorthand()
            .ok()
            .map(str::to_owned);
        let config = std::fs::read_to_string(dest.join(".git/config")).expect("config");
        let stored = repo
            .find_remote("origin")
            .expect("origin")
            .url()
            .map(str::to_owned);
        let mut walk = repo.revwalk().expect("revwalk");
        walk.push_head().expect("push head");
        let commits = walk.count();
        (repo.is_shallow(), readme, head, config, stored, commits)
    })
    .await;
    assert!(shallow, "the clone over http must be shallow");
    assert_eq!(readme.as_deref(), Some("hello again\n"));
    assert_eq!(head_branch.as_deref(), Some("main"));
    assert_eq!(stored_url.as_deref(), Ok(url.as_str()));
    assert_eq!(commits, 1);
    assert!(
        !config.contains(PASSWORD),
        ".git/config holds the password:\n{config}"
    );
    assert!(
        !config.contains(USER),
        ".git/config holds the user:\n{config}"
    );
    assert!(server.request_count() >= 2, "the server saw the clone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_are_permanent_and_secret_free() {
    let (server, url) = start_with_app().await;
    let wrong = url.clone();
    let before = server.request_count();
    let refused = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        git::clone_default_branch(
            &wrong,
            "main",
            &parent.path().join("c"),
            &auth("not-the-password"),
        )
        .map(|_| ())
    })
    .await
    .expect_err("a wrong password must fail");
    let GitError::Permanent(message) = &refused else {
        panic!("wrong credentials must be permanent: {refused:?}");
    };
    assert!(message.contains("refused the credentials"), "{message}");
    // The callback gave up after one refusal instead of looping.
    let attempts = server.request_count() - before;
    assert!(
        (2..=3).contains(&attempts),
        "{attempts} requests: {:?}",
        server.request_log()
    );
    assert!(
        message.contains(server.base_url.trim_start_matches("http://")),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");

    let missing = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let no_token = GitAuth {
            token: None,
            ..auth("")
        };
        git::clone_default_branch(&url, "main", &parent.path().join("c"), &no_token).map(|_| ())
    })
    .await
    .expect_err("no token must fail");
    assert!(
        matches!(&missing, GitError::Permanent(m) if m.contains("no forge token")),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_push_land_on_the_server() {
    let (server, url) = start_with_app().await;
    let (commit, outcome, changed, remote_tip) = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let repo =
            git::clone_default_branch(&url, "main", &parent.path().join("c"), &auth(PASSWORD))
                .expect("clone");
        git::write_files(
            &repo,
            &[
                (
                    "Cargo.toml".into(),
                    "[dependencies]\nserde = \"1.0.200\"\n".into(),
                ),
                ("docs/SECURITY.md".into(), "fixed\n".into()),
            ],
        )
        .expect("write");
        let paths = ["Cargo.toml".to_owned(), "docs/SECURITY.md".to_owned()];
        let commit =
            git::commit_files(&repo, &paths, &spec("Bump serde to 1.0.200")).expect("commit");
        let changed = git::diff_stat(&repo, commit).expect("diff");
        let outcome = git::push_branch(&repo, BRANCH, commit, &auth(PASSWORD)).expect("push");
        let tip = git::remote_branch_commit(&repo, BRANCH, &auth(PASSWORD)).expect("ls-remote");
        (commit, outcome, changed, tip)
    })
    .await;
    assert_eq!(outcome, PushOutcome::Pushed);
    assert_eq!(
        changed,
        vec!["Cargo.toml".to_string(), "docs/SECURITY.md".to_string()]
    );
    assert_eq!(remote_tip, Some(commit));

    assert_eq!(
        server.git("app", &["rev-parse", BRANCH]).trim(),
        commit.to_string()
    );
    let log = server.git("app", &["log", "--format=%s|%an|%ae", BRANCH]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "Bump serde to 1.0.200|Remediator|remediator@example.com",
            "initial commit|Test Setup|setup@example.com"
        ]
    );
    assert_eq!(
        server.git("app", &["show", &format!("{BRANCH}:Cargo.toml")]),
        "[dependencies]\nserde = \"1.0.200\"\n"
    );
    assert_eq!(
        server.git("app", &["show", &format!("{BRANCH}:docs/SECURITY.md")]),
        "fixed\n"
    );
    // main is untouched.
    assert_eq!(
        server.git("app", &["show", "main:Cargo.toml"]),
        "[dependencies]\nserde = \"1.0.100\"\n"
    );
    server.git("app", &["fsck", "--strict", "--no-dangling"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_the_same_change_again_is_already_up_to_date() {
    let (server, url) = start_with_app().await;
    let edit = [("Cargo.toml", "[dependencies]\nserde = \"1.0.200\"\n")];
    let first_url = url.clone();
    let (first, outcome) = blocking(move || clone_edit_push(&first_url, &edit, "Bump serde"))
        .await
        .expect("first run");
    assert_eq!(outcome, PushOutcome::Pushed);
    let requests_before = server.request_count();

    // A rerun from a fresh clone: a different commit (other message) with the same files.
    let (second, outcome) = blocking(move || clone_edit_push(&url, &edit, "Bump serde (retry)"))
        .await
        .expect("second run");
    assert_ne!(first, second);
    assert_eq!(outcome, PushOutcome::AlreadyUpToDate);
    assert_eq!(
        server.git("app", &["rev-parse", BRANCH]).trim(),
        first.to_string()
    );
    let second_run = &server.request_log()[requests_before..];
    assert!(
        second_run
            .iter()
            .any(|r| r.starts_with("POST /app.git/git-upload-pack")),
        "the rerun fetched the branch: {second_run:?}"
    );
    assert!(
        !second_run.iter().any(|r| r.contains("receive-pack")),
        "the rerun must not push: {second_run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_change_replaces_the_existing_branch() {
    let (server, url) = start_with_app().await;
    let first_url = url.clone();
    let (first, _) = blocking(move || {
        clone_edit_push(
            &first_url,
            &[("Cargo.toml", "serde = \"1.0.150\"\n")],
            "First try",
        )
    })
    .await
    .expect("first run");
    let (second, outcome) = blocking(move || {
        clone_edit_push(
            &url,
            &[("Cargo.toml", "serde = \"1.0.200\"\n")],
            "Second try",
        )
    })
    .await
    .expect("second run");
    assert_eq!(outcome, PushOutcome::Pushed);
    assert_eq!(
        server.git("app", &["rev-parse", BRANCH]).trim(),
        second.to_string()
    );
    assert_eq!(
        server.git("app", &["show", &format!("{BRANCH}:Cargo.toml")]),
        "serde = \"1.0.200\"\n"
    );
    // A force push: the old commit is not in the branch's history.
    let history = server.git("app", &["rev-list", BRANCH]);
    assert!(!history.contains(&first.to_string()), "{history}");
    server.git("app", &["fsck", "--no-dangling"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_rejected_by_the_server_is_an_error() {
    let (server, url) = start_with_app().await;
    let first_url = url.clone();
    let (first, _) = blocking(move || {
        clone_edit_push(
            &first_url,
            &[("Cargo.toml", "serde = \"1.0.150\"\n")],
            "First try",
        )
    })
    .await
    .expect("first run");
    // The server now refuses to rewrite history: libgit2's push returns Ok, the ref is "ng".
    server.git("app", &["config", "receive.denyNonFastForwards", "true"]);
    let rejected = blocking(move || {
        clone_edit_push(
            &url,
            &[("Cargo.toml", "serde = \"1.0.200\"\n")],
            "Second try",
        )
    })
    .await
    .expect_err("a rejected ref must fail the push");
    assert!(
        matches!(&rejected, GitError::Permanent(m) if m.contains("rejected") && m.contains(BRANCH)),
        "{rejected:?}"
    );
    assert_eq!(
        server.git("app", &["rev-parse", BRANCH]).trim(),
        first.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reports_symlinks_executables_and_submodules() {
    let server = GitServer::start(USER, PASSWORD).await;
    let url = server.create_repo_with(
        "kinds",
        "main",
        &[
            RepoEntry::File("src/lib.rs", "pub fn f() {}\n"),
            RepoEntry::Executable("run.sh", "#!/bin/sh\necho hi\n"),
            RepoEntry::Symlink("link.rs", "src/lib.rs"),
            RepoEntry::Symlink("linkdir", "src"),
            RepoEntry::Gitlink("vendor/sub"),
        ],
    );
    let results = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let dest = parent.path().join("c");
        let repo = git::clone_default_branch(&url, "main", &dest, &auth(PASSWORD)).expect("clone");
        let kinds: Vec<(String, ExistingEntry)> = [
            "src/lib.rs",
            "src",
            "run.sh",
            "link.rs",
            "linkdir",
            "linkdir/lib.rs",
            "vendor/sub",
            "vendor/sub/file.txt",
            "nope.txt",
            "src/lib.rs/x",
        ]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                git::inspect_entry(&repo, p).expect("inspect"),
            )
        })
        .collect();
        // A symlink made in the work tree only (not in HEAD) is caught too.
        std::os::unix::fs::symlink("/etc", dest.join("etc")).expect("symlink");
        let work_tree_link = git::inspect_entry(&repo, "etc/hostname").expect("inspect");
        let outside_read = git::read_file(&repo, "etc/hostname");
        let through_link = git::read_file(&repo, "linkdir/lib.rs");
        let writes: Vec<Result<(), GitError>> = [
            "linkdir/new.rs",
            "link.rs",
            "etc/evil",
            "../escape.txt",
            "/tmp/abs.txt",
            ".git/config",
            "src",
            "run.sh/x",
        ]
        .iter()
        .map(|p| git::write_files(&repo, &[(p.to_string(), "x".to_string())]))
        .collect();
        let lib_after = std::fs::read_to_string(dest.join("src/lib.rs")).expect("read");
        (
            kinds,
            work_tree_link,
            outside_read,
            through_link,
            writes,
            lib_after,
            parent,
        )
    })
    .await;
    let (kinds, work_tree_link, outside_read, through_link, writes, lib_after, _parent) = results;
    let expected = [
        ExistingEntry::Regular,
        ExistingEntry::Directory,
        ExistingEntry::Executable,
        ExistingEntry::Symlink,
        ExistingEntry::Symlink,
        ExistingEntry::Symlink,
        ExistingEntry::Submodule,
        ExistingEntry::Submodule,
        ExistingEntry::Missing,
        ExistingEntry::Missing,
    ];
    for ((path, kind), want) in kinds.iter().zip(expected) {
        assert_eq!(*kind, want, "{path}");
    }
    assert_eq!(work_tree_link, ExistingEntry::Symlink);
    assert!(
        matches!(&outside_read, Err(GitError::Permanent(m)) if m.contains("outside")),
        "{outside_read:?}"
    );
    assert_eq!(
        through_link.expect("read").as_deref(),
        Some("pub fn f() {}\n")
    );
    for (i, result) in writes.iter().enumerate() {
        assert!(
            matches!(result, Err(GitError::Permanent(_))),
            "write #{i}: {result:?}"
        );
    }
    assert_eq!(
        lib_after, "pub fn f() {}\n",
        "nothing was written through the symlink"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_files_refuses_unchanged_files() {
    let (_server, url) = start_with_app().await;
    let result = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let repo =
            git::clone_default_branch(&url, "main", &parent.path().join("c"), &auth(PASSWORD))
                .expect("clone");
        git::write_files(&repo, &[("README.md".into(), "hello\n".into())]).expect("write");
        git::commit_files(&repo, &["README.md".to_owned()], &spec("no-op")).map(|_| ())
    })
    .await;
    assert!(
        matches!(&result, Err(GitError::Permanent(m)) if m.contains("nothing to commit")),
        "{result:?}"
    );
}

#[test]
fn scratch_dir_is_removed_on_drop_even_after_a_failure() {
    let parent = tempfile::tempdir().expect("parent");
    let nested = parent.path().join("clones");
    let kept: PathBuf;
    {
        let scratch = ScratchDir::new_in(&nested).expect("scratch");
        kept = scratch.path().to_path_buf();
        assert!(kept.starts_with(&nested));
        std::fs::create_dir_all(kept.join("repo/.git/objects")).expect("mkdir");
        std::fs::write(kept.join("repo/.git/objects/pack"), "x").expect("write");
        assert!(kept.exists());
    }
    assert!(!kept.exists(), "scratch dir left behind");

    fn failing_job(parent: &Path) -> Result<PathBuf, (GitError, PathBuf)> {
        let scratch = ScratchDir::new_in(parent).map_err(|e| (e, PathBuf::new()))?;
        let path = scratch.path().to_path_buf();
        std::fs::write(path.join("partial"), "x").expect("write");
        git::clone_default_branch(
            "file:///nonexistent/repo.git",
            "main",
            &path.join("repo"),
            &auth(PASSWORD),
        )
        .map(|_| path.clone())
        .map_err(|e| (e, path))
    }
    let (error, failed_path) = failing_job(&nested).expect_err("clone of a missing path fails");
    assert!(
        matches!(&error, GitError::Permanent(m) if m.contains("not found")),
        "{error:?}"
    );
    assert!(
        !failed_path.exists(),
        "scratch dir left behind after a failure"
    );
    assert_eq!(std::fs::read_dir(&nested).expect("list").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_repository_and_branch_are_permanent() {
    let (server, url) = start_with_app().await;
    let missing_repo = format!("{}/does-not-exist.git", server.base_url);
    let (repo_error, branch_error) = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let repo_error = git::clone_default_branch(
            &missing_repo,
            "main",
            &parent.path().join("a"),
            &auth(PASSWORD),
        )
        .map(|_| ())
        .expect_err("missing repo");
        let branch_error =
            git::clone_default_branch(&url, "develop", &parent.path().join("b"), &auth(PASSWORD))
                .map(|_| ())
                .expect_err("missing branch");
        (repo_error, branch_error)
    })
    .await;
    assert!(
        matches!(&repo_error, GitError::Permanent(m) if m.contains("not found")),
        "{repo_error:?}"
    );
    assert!(
        matches!(&branch_error, GitError::Permanent(m) if m.contains("develop") && m.contains("not found")),
        "{branch_error:?}"
    );
}

#[test]
fn nothing_listening_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let parent = tempfile::tempdir().expect("parent");
    let error = git::clone_default_branch(
        &format!("http://127.0.0.1:{port}/app.git"),
        "main",
        &parent.path().join("c"),
        &auth(PASSWORD),
    )
    .map(|_| ())
    .expect_err("nobody listens there");
    assert!(error.is_transient(), "{error:?}");
    assert!(!error.message().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_urls_clone_in_full_and_push() {
    let (server, _) = start_with_app().await;
    let url = format!("file://{}", server.repo_path("app").display());
    let (shallow, outcome, commit) = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let repo =
            git::clone_default_branch(&url, "main", &parent.path().join("c"), &auth(PASSWORD))
                .expect("clone");
        git::write_files(&repo, &[("new.txt".into(), "n\n".into())]).expect("write");
        let commit = git::commit_files(&repo, &["new.txt".to_owned()], &spec("Add new.txt"))
            .expect("commit");
        let outcome = git::push_branch(&repo, BRANCH, commit, &auth(PASSWORD)).expect("push");
        (repo.is_shallow(), outcome, commit)
    })
    .await;
    assert!(!shallow);
    assert_eq!(outcome, PushOutcome::Pushed);
    assert_eq!(
        server.git("app", &["rev-parse", BRANCH]).trim(),
        commit.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_the_default_branch_moved_rebuilds_the_branch_on_it() {
    let (server, url) = start_with_app().await;
    let edit = [("Cargo.toml", "[dependencies]\nserde = \"1.0.200\"\n")];
    let first_url = url.clone();
    let (first, _) = blocking(move || clone_edit_push(&first_url, &edit, "Bump serde"))
        .await
        .expect("first run");
    let new_main = server.push_commit("app", "main", &[("CHANGELOG.md", "v2\n")], "Release v2");

    let (second, outcome) = blocking(move || clone_edit_push(&url, &edit, "Bump serde"))
        .await
        .expect("rerun");
    assert_ne!(first, second);
    assert_eq!(outcome, PushOutcome::Pushed);
    assert_eq!(
        server.git("app", &["rev-parse", BRANCH]).trim(),
        second.to_string()
    );
    assert_eq!(
        server
            .git("app", &["rev-parse", &format!("{BRANCH}^")])
            .trim(),
        new_main
    );
    assert_eq!(
        server.git("app", &["show", &format!("{BRANCH}:CHANGELOG.md")]),
        "v2\n"
    );
    server.git("app", &["fsck", "--no-dangling"]);
}

/// A clone that writes only the lock tools' files: the other files stay in the object
/// database, are still read through `read_file`, and the commit of a changed manifest keeps
/// every one of them (same tree as a full checkout's commit of the same edit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_clone_reads_and_commits_the_whole_tree() {
    let server = GitServer::start(USER, PASSWORD).await;
    let url = server.create_repo_with(
        "sparse",
        "main",
        &[
            RepoEntry::File(
                "package.json",
                "{\"dependencies\":{\"lodash\":\"^4.17.20\"}}\n",
            ),
            RepoEntry::File("package-lock.json", "{}\n"),
            RepoEntry::File("src/index.js", "const _ = require('lodash');\n"),
            RepoEntry::Executable("bin/run.sh", "#!/bin/sh\n"),
            RepoEntry::File("docs/README.md", "docs\n"),
        ],
    );
    let (on_disk, read_back, sparse_tree, full_tree, changed) = blocking(move || {
        let parent = tempfile::tempdir().expect("parent");
        let edit = [(
            "package.json".to_owned(),
            "{\"dependencies\":{\"lodash\":\"^4.17.21\"}}\n".to_owned(),
        )];
        let paths = vec!["package.json".to_owned()];
        let only = |p: &str| p.ends_with("package.json") || p.ends_with("package-lock.json");
        let dest = parent.path().join("sparse");
        let sparse = git::clone_branch(
            &url,
            "main",
            &dest,
            &auth(PASSWORD),
            git::Materialize::Only(&only),
        )
        .expect("sparse clone");
        let mut on_disk: Vec<String> = walk(&dest);
        on_disk.sort();
        let read_back = git::read_file(&sparse, "src/index.js").expect("read");
        git::write_files(&sparse, &edit).expect("write");
        let commit = git::commit_files(&sparse, &paths, &spec("bump")).expect("commit");
        let sparse_tree = sparse.find_commit(commit).unwrap().tree_id();
        let changed = git::diff_stat(&sparse, commit).expect("diff");

        let full =
            git::clone_default_branch(&url, "main", &parent.path().join("full"), &auth(PASSWORD))
                .expect("full clone");
        git::write_files(&full, &edit).expect("write");
        let commit = git::commit_files(&full, &paths, &spec("bump")).expect("commit");
        let full_tree = full.find_commit(commit).unwrap().tree_id();
        (on_disk, read_back, sparse_tree, full_tree, changed)
    })
    .await;
    assert_eq!(on_disk, vec!["package-lock.json", "package.json"]);
    assert_eq!(read_back.as_deref(), Some("const _ = require('lodash');\n"));
    assert_eq!(changed, vec!["package.json"]);
    assert_eq!(
        sparse_tree, full_tree,
        "the sparse commit lost or changed a file"
    );
}

/// Repository-relative paths of the files under `root`, `.git` left out.
fn walk(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found
}
