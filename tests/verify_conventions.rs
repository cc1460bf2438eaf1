//! The test conventions of Cargo, Poetry and Go with the real tools, as a user runs them: the
//! worker's default configuration and the tools as the README installs them (rustup's `cargo`
//! proxy and `poetry` on PATH, as `scripts/test` puts them there).
//!
//! Cargo and Poetry run end to end: a real git server, the real registries through this
//! machine's network (the locks are written here by the real tools with the user's own client
//! configuration, so no registry host appears in this file), the lock step's real update, and
//! the test step under bubblewrap on both trees. Each project holds a test that reads the
//! release its lock holds, so the fix regresses it, beside tests the fix leaves alone. The Go
//! module proxy is not reachable here, so the Go convention runs on a module with no
//! dependencies, from discovery to the comparison, on two trees of its own; so do a
//! requirements file with pytest, and a repository command whose runner prints JUnit XML.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use remediator::verify::discover::{self, Discovery};
use remediator::verify::{compare, run};
use serde_json::Value;
use support::fake_github::FakeGithub;
use support::remediation::{World, WorldOptions};

const END: Duration = Duration::from_secs(420);

/// Runs `program` in `dir` as a developer would, caches in `home`; panics with its output.
fn developer(program: &str, args: &[&str], dir: &Path, home: &Path) {
    let user_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo"));
    let cargo_home = home.join("cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    // The user's cargo configuration (a mirror, a source replacement) still applies.
    if let Some(config) = user_cargo.map(|h| h.join("config.toml"))
        && config.is_file()
    {
        std::fs::copy(config, cargo_home.join("config.toml")).unwrap();
    }
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("CARGO_HOME", &cargo_home)
        .env("POETRY_CACHE_DIR", home.join("poetry-cache"))
        .env("POETRY_VIRTUALENVS_PATH", home.join("poetry-venvs"))
        .env("POETRY_KEYRING_ENABLED", "false")
        .env("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test puts the tools on PATH)"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read(dir: &Path, file: &'static str) -> (&'static str, String) {
    (file, std::fs::read_to_string(dir.join(file)).unwrap())
}

/// Remediates `package` from `installed` to `fixed` in a repository of `files` with the
/// default configuration; the ended operation and the pull requests opened.
async fn remediate(
    files: Vec<(&'static str, String)>,
    advisory: (&str, &str, &str, &str, &str),
) -> (Value, Vec<Value>, World) {
    let world = World::start(WorldOptions {
        files,
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let (package, ecosystem, id, installed, fixed) = advisory;
    let assessment = world
        .add_affected(package, ecosystem, id, installed, fixed)
        .await;
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    (op, github.created(), world)
}

/// smallvec: buffer overflow in `insert_many` (RUSTSEC-2021-0003); the OSV ecosystem's name.
const SMALLVEC: (&str, &str, &str, &str, &str) = (
    "smallvec",
    "crates.io",
    "GHSA-43w2-9j62-hq99",
    "1.6.0",
    "1.6.1",
);

const CRATE_SOURCE: &str = r#"//! The storefront's core.

pub fn first(items: &[u8]) -> Option<u8> {
    smallvec::SmallVec::<[u8; 4]>::from_slice(items).first().copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn takes_the_first() {
        assert_eq!(super::first(&[3, 4]), Some(3));
    }
"#;

const PINNED_TEST: &str = r#"
    #[test]
    fn builds_against_the_audited_release() {
        let lock = include_str!("../Cargo.lock");
        assert!(
            lock.contains("name = \"smallvec\"\nversion = \"1.6.0\""),
            "the lock no longer holds smallvec 1.6.0"
        );
    }
"#;

/// A crate depending on smallvec 1.6.0 (locked by the real cargo), whose tests are
/// `CRATE_SOURCE`'s and, if `pinned`, one that fails once the lock moves.
fn cargo_project(pinned: bool) -> Vec<(&'static str, String)> {
    let dev = tempfile::tempdir().unwrap();
    let dir = dev.path().join("crate");
    write(
        &dir,
        "Cargo.toml",
        "[package]\nname = \"storefront-core\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nsmallvec = \"1.6.0\"\n",
    );
    let tests = if pinned { PINNED_TEST } else { "" };
    write(&dir, "src/lib.rs", &format!("{CRATE_SOURCE}{tests}}}\n"));
    developer("cargo", &["generate-lockfile"], &dir, dev.path());
    let precise = ["update", "-p", "smallvec", "--precise", "1.6.0"];
    developer("cargo", &precise, &dir, dev.path());
    vec![
        read(&dir, "Cargo.toml"),
        read(&dir, "src/lib.rs"),
        read(&dir, "Cargo.lock"),
    ]
}

fn counts(side: &Value) -> (Option<u64>, Option<u64>) {
    (side["passed"].as_u64(), side["failed"].as_u64())
}

#[tokio::test]
async fn a_cargo_fix_that_breaks_a_test_is_a_draft_naming_it_and_a_control_is_ready() {
    let ((broken, broken_prs, broken_world), (control, control_prs, control_world)) = tokio::join!(
        remediate(cargo_project(true), SMALLVEC),
        remediate(cargo_project(false), SMALLVEC)
    );
    assert_eq!(
        broken["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{broken}"
    );
    let tests = &broken["output"]["tests"];
    eprintln!("cargo, breaking fix: {tests}");
    assert_eq!(tests["install"], "cargo fetch --locked", "{tests}");
    assert_eq!(
        tests["command"], "cargo test --locked --offline --no-fail-fast",
        "{tests}"
    );
    assert_eq!(tests["outcome"], "regressed", "{tests}");
    assert_eq!(tests["compared_by"], "tests", "{tests}");
    assert_eq!(counts(&tests["main"]), (Some(2), Some(0)), "{tests}");
    assert_eq!(counts(&tests["branch"]), (Some(1), Some(1)), "{tests}");
    let regressions = tests["regressions"].as_array().unwrap();
    assert_eq!(regressions.len(), 1, "{tests}");
    assert_eq!(
        regressions[0]["name"],
        "tests::builds_against_the_audited_release"
    );
    let output = regressions[0]["output"].as_str().unwrap();
    assert!(
        output.contains("the lock no longer holds smallvec 1.6.0"),
        "{output}"
    );
    assert_eq!(broken_prs[0]["draft"], true, "{}", broken_prs[0]);

    assert_eq!(
        control["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{control}"
    );
    let tests = &control["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{tests}");
    assert_eq!(counts(&tests["branch"]), (Some(1), Some(0)), "{tests}");
    assert_eq!(control_prs[0]["draft"], false, "{}", control_prs[0]);
    broken_world.stop().await;
    control_world.stop().await;
}

/// requests: `verify=False` sticks to a Session's connections (CVE-2024-35195).
const REQUESTS: (&str, &str, &str, &str, &str) = (
    "requests",
    "PyPI",
    "GHSA-9wx4-h78v-vm56",
    "2.31.0",
    "2.32.0",
);

const PYTHON_TESTS: &str = r#"import requests


def test_builds_a_session():
    assert requests.Session().headers["Accept"] == "*/*"


def test_runs_the_audited_release():
    assert requests.__version__ == "2.31.0", requests.__version__
"#;

/// A Poetry project (no package of its own) requiring requests and pytest, locked by the real
/// Poetry with requests 2.31.0 held under a range that admits the fix.
fn poetry_project() -> Vec<(&'static str, String)> {
    let dev = tempfile::tempdir().unwrap();
    let dir = dev.path().join("api");
    let pyproject = |requests: &str| {
        format!(
            "[project]\nname = \"storefront-api\"\nversion = \"0.1.0\"\n\
             requires-python = \">=3.10\"\ndependencies = [\"{requests}\", \"pytest>=8\"]\n\n\
             [tool.poetry]\npackage-mode = false\n"
        )
    };
    write(&dir, "pyproject.toml", &pyproject("requests==2.31.0"));
    developer("poetry", &["lock", "--no-interaction"], &dir, dev.path());
    write(&dir, "pyproject.toml", &pyproject("requests>=2.31.0,<3"));
    developer("poetry", &["lock", "--no-interaction"], &dir, dev.path());
    write(&dir, "tests/test_api.py", PYTHON_TESTS);
    vec![
        read(&dir, "pyproject.toml"),
        read(&dir, "poetry.lock"),
        read(&dir, "tests/test_api.py"),
    ]
}

#[tokio::test]
async fn a_poetry_fix_that_breaks_a_pytest_test_is_a_draft_naming_it() {
    let (op, created, world) = remediate(poetry_project(), REQUESTS).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    eprintln!("poetry, breaking fix: {tests}");
    assert_eq!(
        tests["install"], "poetry install --no-interaction",
        "{tests}"
    );
    assert_eq!(tests["command"], "poetry run pytest -rA", "{tests}");
    assert_eq!(tests["source"], "poetry.lock resolves pytest", "{tests}");
    assert_eq!(tests["outcome"], "regressed", "{tests}");
    assert_eq!(counts(&tests["main"]), (Some(2), Some(0)), "{tests}");
    assert_eq!(counts(&tests["branch"]), (Some(1), Some(1)), "{tests}");
    assert_eq!(
        tests["regressions"][0]["name"], "tests/test_api.py::test_runs_the_audited_release",
        "{tests}"
    );
    let output = tests["regressions"][0]["output"].as_str().unwrap();
    assert!(
        output.contains("AssertionError") && output.contains("== '2.31.0'"),
        "{output}"
    );
    assert_eq!(created[0]["draft"], true, "{}", created[0]);
    world.stop().await;
}

const GO_SOURCE: &str = "package billing\n\nimport \"fmt\"\n\nfunc Pad(s string, n int) string { return fmt.Sprintf(\"%-*s\", n, s) }\n\nfunc Format(n int) string { return fmt.Sprint(n) }\n";
const GO_BROKEN: &str = "package billing\n\nimport \"fmt\"\n\nfunc Pad(s string, n int) string { return fmt.Sprintf(\"%-*s\", n, s) }\n\nfunc Format(n int) string { return fmt.Sprint(n, \"!\") }\n";
const GO_TESTS: &str = "package billing\n\nimport \"testing\"\n\nfunc TestPad(t *testing.T) {\n\tif Pad(\"a\", 3) != \"a  \" {\n\t\tt.Fatal(\"bad pad\")\n\t}\n}\n\nfunc TestFormat(t *testing.T) {\n\tif got := Format(7); got != \"7\" {\n\t\tt.Errorf(\"Format(7) = %q, want %q\", got, \"7\")\n\t}\n}\n";

#[tokio::test]
async fn the_go_convention_runs_go_test_in_the_sandbox_and_names_each_test() {
    let mut settings = remediator::config::Settings::defaults().unwrap();
    if let Ok(go) = std::env::var("REMEDIATOR_TEST_GO") {
        settings.lockfiles.go = go;
    }
    let sandbox = remediator::sandbox::Sandbox::new(settings.sandbox.clone(), Vec::new());
    let trees = tempfile::tempdir().unwrap();
    let (main, branch) = (trees.path().join("main"), trees.path().join("branch"));
    for (tree, source) in [(&main, GO_SOURCE), (&branch, GO_BROKEN)] {
        write(tree, "go.mod", "module example.com/billing\n\ngo 1.21\n");
        write(tree, "billing.go", source);
        write(tree, "billing_test.go", GO_TESTS);
    }
    let plan = match discover::discover(&main, "", None, &settings.verify, &settings.lockfiles) {
        Discovery::Found(plan) => plan,
        Discovery::NotFound(why) => panic!("{why}"),
    };
    assert_eq!(plan.test.to_string().rsplit_once(' ').unwrap().1, "./...");
    let on = |tree| run::run(&sandbox, &settings.lockfiles, &settings.verify, &plan, tree);
    let main_run = on(&main).await.unwrap();
    let branch_run = on(&branch).await.unwrap();
    assert!(main_run.passed(), "{}", main_run.output);
    let comparison = compare::compare(&main_run, &branch_run, "go test");
    assert_eq!(
        comparison.by,
        compare::ComparedBy::Tests,
        "{}",
        branch_run.output
    );
    assert_eq!(comparison.regressions.len(), 1, "{comparison:?}");
    assert_eq!(
        comparison.regressions[0].name,
        "example.com/billing.TestFormat"
    );
    assert_eq!(
        comparison.regressions[0].output,
        "billing_test.go:13: Format(7) = \"7!\", want \"7\""
    );
    // The module cache the install kept in the tree can be removed with it.
    std::fs::remove_dir_all(&branch).unwrap();
}

const PY_SOURCE: &str = "def fmt(n):\n    return str(n)\n";
const PY_BROKEN: &str = "def fmt(n):\n    return f\"{n}!\"\n";
const PY_TESTS: &str = "from billing import fmt\n\n\ndef test_formats():\n    assert fmt(7) == '7'\n\n\ndef test_formats_zero():\n    assert fmt(0).startswith('0')\n";

#[tokio::test]
async fn a_requirements_file_naming_pytest_runs_in_a_virtualenv_in_the_sandbox() {
    let settings = remediator::config::Settings::defaults().unwrap();
    let sandbox = remediator::sandbox::Sandbox::new(settings.sandbox.clone(), Vec::new());
    let trees = tempfile::tempdir().unwrap();
    let (main, branch) = (trees.path().join("main"), trees.path().join("branch"));
    for (tree, source) in [(&main, PY_SOURCE), (&branch, PY_BROKEN)] {
        write(tree, "requirements.txt", "pytest>=8\n");
        write(tree, "billing.py", source);
        write(tree, "test_billing.py", PY_TESTS);
    }
    let plan = match discover::discover(&main, "", None, &settings.verify, &settings.lockfiles) {
        Discovery::Found(plan) => plan,
        Discovery::NotFound(why) => panic!("{why}"),
    };
    let on = |tree| run::run(&sandbox, &settings.lockfiles, &settings.verify, &plan, tree);
    let main_run = on(&main).await.unwrap();
    assert!(main_run.passed(), "{}", main_run.output);
    let branch_run = on(&branch).await.unwrap();
    let comparison = compare::compare(&main_run, &branch_run, "pytest");
    let names: Vec<&str> = comparison
        .regressions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["test_billing.py::test_formats"],
        "{}",
        branch_run.output
    );
    assert_eq!(main_run.count(true), 2, "{}", main_run.output);
}

const JS_SOURCE: &str = "exports.fmt = (n) => String(n);\n";
const JS_BROKEN: &str = "exports.fmt = (n) => `${n}!`;\n";
const JS_TESTS: &str = "const test = require('node:test');\nconst assert = require('node:assert');\nconst { fmt } = require('./billing');\n\ntest('formats', () => assert.strictEqual(fmt(7), '7'));\ntest('formats zero', () => assert.ok(fmt(0).startsWith('0')));\n";

/// A repository's own command that prints JUnit XML (node's reporter) is compared test by
/// test in the sandbox, not by its exit status.
#[tokio::test]
async fn a_repository_command_printing_junit_xml_is_compared_test_by_test() {
    let settings = remediator::config::Settings::defaults().unwrap();
    let sandbox = remediator::sandbox::Sandbox::new(settings.sandbox.clone(), Vec::new());
    let trees = tempfile::tempdir().unwrap();
    let (main, branch) = (trees.path().join("main"), trees.path().join("branch"));
    for (tree, source) in [(&main, JS_SOURCE), (&branch, JS_BROKEN)] {
        write(
            tree,
            "package.json",
            "{\"name\": \"billing\", \"version\": \"1.0.0\"}\n",
        );
        write(
            tree,
            ".remediator.toml",
            "[test]\ncommand = \"node --test --test-reporter=junit\"\n",
        );
        write(tree, "billing.js", source);
        write(tree, "billing.test.js", JS_TESTS);
    }
    let plan = match discover::discover(&main, "", None, &settings.verify, &settings.lockfiles) {
        Discovery::Found(plan) => plan,
        Discovery::NotFound(why) => panic!("{why}"),
    };
    let on = |tree| run::run(&sandbox, &settings.lockfiles, &settings.verify, &plan, tree);
    let main_run = on(&main).await.unwrap();
    let branch_run = on(&branch).await.unwrap();
    assert!(main_run.passed(), "{}", main_run.output);
    assert!(
        main_run.output.contains("<testsuites>"),
        "{}",
        main_run.output
    );
    let comparison = compare::compare(&main_run, &branch_run, "node --test");
    assert_eq!(
        comparison.by,
        compare::ComparedBy::Tests,
        "{}",
        branch_run.output
    );
    let regressed: Vec<&str> = comparison
        .regressions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(regressed, ["formats"], "{comparison:?}");
    assert!(
        comparison.regressions[0].output.contains("'7!' !== '7'"),
        "{}",
        comparison.regressions[0].output
    );
}
