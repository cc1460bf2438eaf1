//! The test step end to end: a real git server, a local npm registry whose fixed release of
//! `textfmt` removed a function (or not), the real `npm ci` and `node --test` run under
//! bubblewrap by the worker on the default branch's tree and on the fixed tree, and the pull
//! request and operation output that say what the tests found.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use remediator::verify::OnRegression;
use serde_json::{Value, json};
use support::fake_github::FakeGithub;
use support::npm_registry::NpmRegistry;
use support::python_index::PythonIndex;
use support::remediation::{World, WorldOptions};

const END: Duration = Duration::from_secs(240);

/// `textfmt` 1.0.0 has `pad` and `format`; 1.0.1 (the fix) keeps `format` only when `breaks` is
/// false.
const V1: &str =
    "exports.pad = (s, n) => String(s).padEnd(n);\nexports.format = (n) => String(n);\n";
const V1_FIXED_BREAKING: &str = "exports.pad = (s, n) => String(s).padEnd(n);\n";

const TESTS: &str = r#"const test = require('node:test');
const assert = require('node:assert');
const textfmt = require('textfmt');

test('pads to a width', () => {
  assert.strictEqual(textfmt.pad('a', 3), 'a  ');
});

test('formats a number', () => {
  assert.strictEqual(textfmt.format(7), '7');
});
"#;

const ALREADY_BROKEN: &str = r#"
test('rounds prices', () => {
  assert.strictEqual(0.1 + 0.2, 0.3, 'known bug, tracked elsewhere');
});
"#;

async fn registry(breaks: bool) -> NpmRegistry {
    let registry =
        NpmRegistry::start(&[("textfmt", "1.0.0", &[]), ("textfmt", "1.0.1", &[])]).await;
    registry.add_files("textfmt", "1.0.0", &[("index.js", V1)]);
    let fixed = if breaks { V1_FIXED_BREAKING } else { V1 };
    registry.add_files("textfmt", "1.0.1", &[("index.js", fixed)]);
    registry
}

fn package_json(scripts: Value) -> String {
    serde_json::to_string_pretty(&json!({
        "name": "invoices", "version": "2.0.0", "private": true,
        "scripts": scripts,
        "dependencies": {"textfmt": "^1.0.0"}}))
    .unwrap()
        + "\n"
}

fn lock(registry: &NpmRegistry) -> String {
    serde_json::to_string_pretty(&json!({"name": "invoices", "version": "2.0.0",
        "lockfileVersion": 3, "requires": true, "packages": {
            "": {"name": "invoices", "version": "2.0.0", "dependencies": {"textfmt": "^1.0.0"}},
            "node_modules/textfmt": {"version": "1.0.0",
                "resolved": format!("{}textfmt/-/textfmt-1.0.0.tgz", registry.url),
                "integrity": registry.integrity_of("textfmt", "1.0.0")}}}))
    .unwrap()
        + "\n"
}

struct Case {
    files: Vec<(&'static str, String)>,
    on_regression: OnRegression,
}

/// Runs the remediation of `textfmt` 1.0.0 -> 1.0.1 in a project of `files` and returns the
/// ended operation and the pull requests opened.
async fn remediate(case: Case, registry: &NpmRegistry) -> (Value, Vec<Value>, World) {
    remediate_with_catalog_test(case, registry, None).await
}

/// [`remediate`] with the project's `test` in the import catalog set to `catalog_test`
/// (imported through `remediator import`'s own path) before the job is requested.
async fn remediate_with_catalog_test(
    case: Case,
    registry: &NpmRegistry,
    catalog_test: Option<Value>,
) -> (Value, Vec<Value>, World) {
    let url = registry.url.clone();
    let on_regression = case.on_regression;
    let world = World::start(WorldOptions {
        files: case.files,
        adjust: Some(Box::new(move |s| {
            s.lockfiles.npm_registry = url;
            s.verify.on_regression = on_regression;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    if let Some(test) = catalog_test {
        import_catalog_test(&world, Some(test)).await;
    }
    let assessment = world
        .add_affected("textfmt", "npm", "GHSA-tfmt-0001-0001", "1.0.0", "1.0.1")
        .await;
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    (op, github.created(), world)
}

/// Requests the remediation of `(package, ecosystem, advisory)` from 1.0.0 to 1.0.1 in
/// `world` and waits for the operation's end; its time is logged as `what`.
async fn job(
    world: &World,
    (package, ecosystem, advisory): (&str, &str, &str),
    what: &str,
) -> Value {
    let assessment = world
        .add_affected(package, ecosystem, advisory, "1.0.0", "1.0.1")
        .await;
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    log_time(what, &op);
    op
}

/// Imports the world's project again with `test` as its catalog test commands (none: removed).
async fn import_catalog_test(world: &World, test: Option<Value>) {
    let mut project = json!({"id": world.catalog.project, "organization_id": world.catalog.org,
        "name": "web", "repository_url": world.repo_url, "default_branch": "main"});
    if let Some(test) = test {
        project["test"] = test;
    }
    let file = json!({ "projects": [project] }).to_string();
    let rules = support::app::import_rules(&world.app.settings);
    let parsed = remediator::import::parse(&file, &rules).unwrap();
    remediator::import::import(&world.app.pool, parsed)
        .await
        .unwrap();
}

fn project(registry: &NpmRegistry, tests: String) -> Vec<(&'static str, String)> {
    vec![
        ("package.json", package_json(json!({"test": "node --test"}))),
        ("package-lock.json", lock(registry)),
        ("test/invoice.test.js", tests),
    ]
}

fn log_time(what: &str, op: &Value) {
    eprintln!(
        "{what}: test step {} ms (main {} ms{}, branch {} ms)",
        op["output"]["timings_ms"]["test"],
        op["output"]["tests"]["main"]["duration_ms"],
        match op["output"]["tests"]["main"]["cached"] == json!(true) {
            true => ", cached",
            false => "",
        },
        op["output"]["tests"]["branch"]["duration_ms"],
    );
}

#[tokio::test]
async fn a_fix_that_breaks_a_test_opens_a_draft_naming_it_with_its_output() {
    let registry = registry(true).await;
    let files = project(&registry, TESTS.to_owned());
    let case = Case {
        files,
        on_regression: OnRegression::Draft,
    };
    let (op, created, world) = remediate(case, &registry).await;
    log_time("breaking fix", &op);
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "regressed", "{op}");
    assert_eq!(tests["command"], "npm test", "{tests}");
    assert_eq!(tests["compared_by"], "tests", "{tests}");
    assert_eq!(tests["main"]["status"], "passed", "{tests}");
    assert_eq!(
        (
            tests["main"]["passed"].as_u64(),
            tests["main"]["failed"].as_u64()
        ),
        (Some(2), Some(0)),
        "{tests}"
    );
    assert_eq!(
        (
            tests["branch"]["passed"].as_u64(),
            tests["branch"]["failed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{tests}"
    );
    let regressions = tests["regressions"].as_array().unwrap();
    assert_eq!(regressions.len(), 1, "{tests}");
    assert_eq!(regressions[0]["name"], "formats a number");
    assert!(
        regressions[0]["output"]
            .as_str()
            .unwrap()
            .contains("textfmt.format is not a function"),
        "{tests}"
    );
    assert!(
        op["output"]["draft_reason"]
            .as_str()
            .is_some_and(|r| r.contains("formats a number")),
        "{op}"
    );
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], true, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("### Tests"), "{body}");
    assert!(body.contains("**formats a number**"), "{body}");
    assert!(body.contains("textfmt.format is not a function"), "{body}");
    assert!(
        body.contains("- **Default branch:** 2 passed, 0 failed: passed"),
        "{body}"
    );
    assert!(
        body.contains("- **This branch:** 1 passed, 1 failed: failed"),
        "{body}"
    );
    // The branch carries the fix: the test step does not change what is committed.
    let branch = op["output"]["branch"].as_str().unwrap();
    let manifest = world.file_on_branch(branch, "package.json").unwrap();
    assert!(manifest.contains("^1.0.1"), "{manifest}");
    assert_eq!(
        op["output"]["changed_files"],
        json!(["package.json", "package-lock.json"])
    );
    world.stop().await;
}

#[tokio::test]
async fn a_fix_that_breaks_nothing_opens_a_ready_pull_request_with_a_tests_section() {
    let registry = registry(false).await;
    let files = project(&registry, TESTS.to_owned());
    let case = Case {
        files,
        on_regression: OnRegression::Draft,
    };
    let (op, created, world) = remediate(case, &registry).await;
    log_time("control", &op);
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{op}");
    assert_eq!(tests["branch"]["passed"], 2, "{tests}");
    assert_eq!(tests["branch"]["failed"], 0, "{tests}");
    assert_eq!(tests["regressions"], json!([]));
    assert_eq!(op["output"]["draft_reason"], Value::Null);
    assert!(op["output"]["timings_ms"]["test"].is_u64(), "{op}");
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(
        body.contains("### Tests")
            && body.contains("`npm test` (from package.json scripts.test), after `npm ci --no-audit --no-fund --registry=")
            && body.contains("No test that passes on the default branch fails with this change."),
        "{body}"
    );
    assert_eq!(tests["main"]["cached"], false, "{tests}");
    // Each install downloaded its one tarball, and the worker kept it (its hash checked).
    let fresh = json!({"reused": 0, "kept": 1, "refused": 0});
    assert_eq!(tests["main"]["downloads"], fresh, "{tests}");
    assert_eq!(tests["branch"]["downloads"], fresh, "{tests}");
    // A second job on the same commit (another advisory of the package) reuses main's run.
    let second = world
        .add_affected("textfmt", "npm", "GHSA-tfmt-0002-0002", "1.0.0", "1.0.1")
        .await;
    let downloads_before = registry.tarball_downloads();
    assert!(downloads_before >= 2, "the first job's installs downloaded");
    let id = world.request(second).await;
    let again = world.wait_for_end(id, END).await;
    log_time("control, second job", &again);
    assert_eq!(
        registry.tarball_downloads(),
        downloads_before,
        "the second job downloads no tarball"
    );
    assert_eq!(
        again["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{again}"
    );
    let tests = &again["output"]["tests"];
    assert_eq!(tests["main"]["cached"], true, "{tests}");
    // The same lock installs again without a download: the tarball comes from the cache.
    assert_eq!(
        tests["branch"]["downloads"],
        json!({"reused": 1, "kept": 0, "refused": 0}),
        "{tests}"
    );
    assert_eq!(
        tests["main"]["commit"],
        op["output"]["tests"]["main"]["commit"]
    );
    assert_eq!(tests["outcome"], "passed", "{tests}");
    world.stop().await;
}

#[tokio::test]
async fn a_test_that_already_fails_on_main_is_named_and_does_not_block() {
    let registry = registry(false).await;
    let files = project(&registry, format!("{TESTS}{ALREADY_BROKEN}"));
    let case = Case {
        files,
        on_regression: OnRegression::Draft,
    };
    let (op, created, world) = remediate(case, &registry).await;
    log_time("pre-existing failure", &op);
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{op}");
    assert_eq!(
        tests["pre_existing_failures"],
        json!(["rounds prices"]),
        "{tests}"
    );
    assert!(
        tests["main"]["status"]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{tests}"
    );
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(
        body.contains("Already failing on the default branch (not caused by this change; not blocking): rounds prices."),
        "{body}"
    );
    world.stop().await;
}

#[tokio::test]
async fn on_regression_fail_fails_the_job_naming_the_test_and_pushes_nothing() {
    let registry = registry(true).await;
    let files = project(&registry, TESTS.to_owned());
    let case = Case {
        files,
        on_regression: OnRegression::Fail,
    };
    let (op, created, world) = remediate(case, &registry).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("formats a number") && error.contains("textfmt.format is not a function"),
        "{error}"
    );
    assert!(created.is_empty());
    assert_eq!(world.branches(), ["main"]);
    world.stop().await;
}

/// The catalog's commands run only the test the breaking fix keeps passing; the repository's
/// own `.remediator.toml` runs them all. The catalog's win, and without them the repository's
/// find the regression: the field decides.
#[tokio::test]
async fn the_catalogs_test_commands_win_over_the_repositorys() {
    let registry = registry(true).await;
    let install = format!("npm ci --no-audit --no-fund --registry={}", registry.url);
    let (pads, formats) = TESTS.split_once("test('formats").unwrap();
    let head = "const test = require('node:test');\nconst assert = require('node:assert');\nconst textfmt = require('textfmt');\n";
    let files = vec![
        ("package.json", package_json(json!({"test": "node --test"}))),
        ("package-lock.json", lock(&registry)),
        ("test/pads.test.js", pads.to_owned()),
        (
            "test/formats.test.js",
            format!("{head}\ntest('formats{formats}"),
        ),
        (
            ".remediator.toml",
            format!("[test]\ninstall = \"{install}\"\ncommand = \"node --test\"\n"),
        ),
    ];
    let case = Case {
        files,
        on_regression: OnRegression::Draft,
    };
    let catalog = json!({"install": install, "command": "node --test test/pads.test.js"});
    let (op, created, world) = remediate_with_catalog_test(case, &registry, Some(catalog)).await;
    log_time("catalog test command", &op);
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(tests["source"], "import catalog", "{tests}");
    assert_eq!(tests["command"], "node --test test/pads.test.js", "{tests}");
    assert_eq!(tests["install"], install.as_str(), "{tests}");
    assert_eq!(tests["outcome"], "passed", "{tests}");
    assert_eq!(
        (
            tests["branch"]["passed"].as_u64(),
            tests["branch"]["failed"].as_u64()
        ),
        (Some(1), Some(0)),
        "{tests}"
    );
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(
        body.contains("`node --test test/pads.test.js` (from import catalog)"),
        "{body}"
    );

    // The same project without the field: the repository's commands run, and regress.
    import_catalog_test(&world, None).await;
    let second = world
        .add_affected("textfmt", "npm", "GHSA-tfmt-0003-0003", "1.0.0", "1.0.1")
        .await;
    let id = world.request(second).await;
    let again = world.wait_for_end(id, END).await;
    let tests = &again["output"]["tests"];
    assert_eq!(tests["source"], ".remediator.toml", "{again}");
    assert_eq!(tests["command"], "node --test", "{tests}");
    assert_eq!(tests["outcome"], "regressed", "{tests}");
    assert_eq!(
        tests["regressions"][0]["name"], "formats a number",
        "{tests}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_project_without_tests_says_so_and_stays_ready() {
    let registry = registry(true).await;
    let files = vec![
        (
            "package.json",
            package_json(json!({"start": "node index.js"})),
        ),
        ("package-lock.json", lock(&registry)),
    ];
    let case = Case {
        files,
        on_regression: OnRegression::Draft,
    };
    let (op, created, world) = remediate(case, &registry).await;
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "no_tests", "{op}");
    assert_eq!(
        tests["reason"],
        "no tests: package.json has no scripts.test"
    );
    assert_eq!(created[0]["draft"], false);
    let body = created[0]["body"].as_str().unwrap();
    assert!(
        body.contains(
            "### Tests\n\nNo tests were run: no tests: package.json has no scripts.test."
        ),
        "{body}"
    );
    world.stop().await;
}

/// Hostile test code: it looks for the worker's secrets and environment, and tries the network
/// (a loopback listener of this test, and the registry) while the tests run. On the fixed tree
/// it fails on purpose, quoting what it found, so the report carries its findings.
#[tokio::test]
async fn hostile_test_code_finds_no_secret_and_reaches_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let watcher = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + END;
        while std::time::Instant::now() < deadline {
            if let Ok((_stream, _)) = listener.accept() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            if counted.load(Ordering::SeqCst) == usize::MAX {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let registry = registry(false).await;
    let registry_port = registry
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let probe = format!(
        r#"const test = require('node:test');
const fs = require('node:fs');
const net = require('node:net');

function tryConnect(port) {{
  return new Promise((resolve) => {{
    const socket = net.connect({{host: '127.0.0.1', port}});
    const timer = setTimeout(() => {{ socket.destroy(); resolve('timeout'); }}, 3000);
    socket.on('connect', () => {{ clearTimeout(timer); socket.destroy(); resolve('REACHED'); }});
    socket.on('error', (e) => {{ clearTimeout(timer); resolve('blocked-' + e.code); }});
  }});
}}

test('probe', async () => {{
  const secrets = ['{forge}', '{llm}', 'postgres://', 'amqp://'];
  let seen = Object.entries(process.env).map(([k, v]) => k + '=' + v).join('\n');
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {{
    try {{ seen += fs.readFileSync('/proc/' + pid + '/environ', 'latin1'); }} catch (e) {{}}
    try {{ seen += fs.readFileSync('/proc/' + pid + '/cmdline', 'latin1'); }} catch (e) {{}}
  }}
  const found = secrets.filter((s) => seen.includes(s));
  // What the worker's own environment holds (cargo's and this suite's variables), and a way
  // out: none of it may be here.
  const leaked = Object.keys(process.env).filter((k) =>
    /^(CARGO_MANIFEST_DIR|CARGO_PKG_NAME|REMEDIATOR_|DATABASE_URL|AMQP_URL)/.test(k) || /^(https?|all)_proxy$/i.test(k));
  const listener = await tryConnect({port});
  const registry = await tryConnect({registry_port});
  // Where the sandbox's forwarder to the egress proxy listens in a networked run.
  const proxy = await tryConnect(3128);
  const version = require('textfmt/package.json').version;
  const report = `PROBE secrets=${{found.length ? found.join(',') : 'none'}} env=${{leaked.length ? leaked.join(',') : 'clean'}} listener=${{listener}} registry=${{registry}} proxy=${{proxy}}`;
  console.log(report);
  if (version === '1.0.1') throw new Error(report);
}});
"#,
        forge = support::remediation::FORGE_TOKEN,
        llm = support::remediation::LLM_KEY,
    );
    let files = vec![
        ("package.json", package_json(json!({"test": "node --test"}))),
        ("package-lock.json", lock(&registry)),
        ("test/probe.test.js", probe),
    ];
    let case = Case {
        files,
        on_regression: OnRegression::Draft,
    };
    let (op, _created, world) = remediate(case, &registry).await;
    log_time("hostile", &op);
    let tests = &op["output"]["tests"];
    // Main's run passed (the probe fails only on the fixed tree): the probe ran both times.
    assert_eq!(tests["main"]["status"], "passed", "{op}");
    assert_eq!(tests["outcome"], "regressed", "{op}");
    let output = tests["regressions"][0]["output"].as_str().unwrap();
    assert!(output.contains("PROBE secrets=none env=clean"), "{output}");
    assert!(output.contains("listener=blocked-"), "{output}");
    assert!(output.contains("registry=blocked-"), "{output}");
    assert!(output.contains("proxy=blocked-"), "{output}");
    assert!(!output.contains("REACHED"), "{output}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the listener was reached"
    );
    connections.store(usize::MAX, Ordering::SeqCst);
    let _ = watcher.join();
    world.stop().await;
}

#[tokio::test]
async fn a_uv_project_whose_fix_breaks_a_pytest_test_gets_a_draft_naming_it() {
    let fixtures = tempfile::tempdir().unwrap();
    let mirror = fixtures.path().join("wheels");
    support::python_mirror::pyfmt(&mirror);
    let project = tempfile::tempdir().unwrap();
    let pyproject = "[project]\nname = \"billing\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"pyfmt>=1.0.0,<1.0.1\"]\n\n[dependency-groups]\ndev = [\"pytest\"]\n\n[tool.uv]\n# The mirror holds Linux wheels only (no colorama for Windows).\nenvironments = [\"sys_platform == 'linux'\"]\n";
    let tests = "import pyfmt\n\n\ndef test_pads():\n    assert pyfmt.pad('a', 3) == 'a  '\n\n\ndef test_formats():\n    assert pyfmt.fmt(7) == '7'\n";
    std::fs::write(project.path().join("pyproject.toml"), pyproject).unwrap();
    let (uv, lock) = support::python_mirror::uv_lock(project.path(), &mirror);
    let (uv_path, find_links) = (uv.clone(), mirror.to_string_lossy().into_owned());
    let world = World::start(WorldOptions {
        files: vec![
            ("pyproject.toml", pyproject.to_owned()),
            ("uv.lock", lock),
            ("tests/test_billing.py", tests.to_owned()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.uv = uv_path;
            s.lockfiles.python_find_links = find_links;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = job(
        &world,
        ("pyfmt", "PyPI", "PYSEC-2026-0001"),
        "uv + pytest, breaking fix",
    )
    .await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(
        tests["command"],
        format!("{uv} run --no-sync pytest -rA"),
        "{tests}"
    );
    assert_eq!(tests["outcome"], "regressed", "{tests}");
    assert_eq!(tests["compared_by"], "tests", "{tests}");
    assert_eq!(
        (
            tests["main"]["passed"].as_u64(),
            tests["main"]["failed"].as_u64()
        ),
        (Some(2), Some(0)),
        "{tests}"
    );
    let regressions = tests["regressions"].as_array().unwrap();
    assert_eq!(regressions.len(), 1, "{tests}");
    assert_eq!(
        regressions[0]["name"],
        "tests/test_billing.py::test_formats"
    );
    assert!(
        regressions[0]["output"]
            .as_str()
            .unwrap()
            .contains("AttributeError: module 'pyfmt' has no attribute 'fmt'"),
        "{tests}"
    );
    let created = github.created();
    assert_eq!(created[0]["draft"], true, "{}", created[0]);
    world.stop().await;
}

/// A yarn 1 lock of `textfmt` 1.0.0 from `registry`, as yarn writes it.
fn yarn_lock(registry: &NpmRegistry) -> String {
    format!(
        "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\n\
         textfmt@^1.0.0:\n  version \"1.0.0\"\n  resolved \"{}textfmt/-/textfmt-1.0.0.tgz\"\n  integrity {}\n",
        registry.url,
        registry.integrity_of("textfmt", "1.0.0")
    )
}

/// yarn 1's installs take the tarballs the worker kept from its offline mirror: a second job
/// on the same lock downloads only what its lock step does (yarn 1 has no lock-only mode, so
/// that step fetches the same tarballs in both jobs).
#[tokio::test]
async fn a_yarn_project_installs_from_the_download_cache_in_a_second_job() {
    let registry = registry(false).await;
    let url = registry.url.clone();
    let yarn = std::env::var("REMEDIATOR_TEST_YARN").unwrap_or_else(|_| "yarn".to_owned());
    let world = World::start(WorldOptions {
        files: vec![
            ("package.json", package_json(json!({"test": "node --test"}))),
            ("yarn.lock", yarn_lock(&registry)),
            ("test/invoice.test.js", TESTS.to_owned()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.npm_registry = url;
            s.lockfiles.yarn = yarn;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = job(&world, ("textfmt", "npm", "GHSA-tfmt-0001-0001"), "yarn 1").await;
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{op}");
    assert_eq!(tests["branch"]["passed"], 2, "{tests}");
    let fresh = json!({"reused": 0, "kept": 1, "refused": 0});
    assert_eq!(tests["main"]["downloads"], fresh, "{tests}");
    assert_eq!(tests["branch"]["downloads"], fresh, "{tests}");
    let first_job = registry.tarball_downloads();

    let again = job(
        &world,
        ("textfmt", "npm", "GHSA-tfmt-0002-0002"),
        "yarn 1, second job",
    )
    .await;
    let tests = &again["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{tests}");
    assert_eq!(tests["main"]["cached"], true, "{tests}");
    assert_eq!(tests["branch"]["passed"], 2, "{tests}");
    assert_eq!(
        tests["branch"]["downloads"],
        json!({"reused": 1, "kept": 0, "refused": 0}),
        "{tests}"
    );
    // The first job's test installs downloaded two tarballs (main's and the branch's); the
    // second's none: only its lock step's requests reached the registry.
    assert_eq!(
        registry.tarball_downloads() - first_job,
        first_job - 2,
        "the second job's test install downloaded nothing"
    );
    world.stop().await;
}

/// A Poetry project locked from `index` (pyfmt 1.0.0 and pytest) by the real Poetry; the
/// project's files and the Poetry used.
fn poetry_project(
    index: &PythonIndex,
    mirror: &std::path::Path,
) -> (Vec<(&'static str, String)>, String) {
    // Poetry locks for every platform: pytest's Windows dependency too.
    support::python_mirror::download_wheels(mirror, &["colorama"]);
    let poetry = std::env::var("REMEDIATOR_TEST_POETRY").unwrap_or_else(|_| "poetry".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let pyproject = format!(
        "[project]\nname = \"billing\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\n\
         dependencies = [\"pyfmt>=1.0.0,<1.0.1\", \"pytest\"]\n\n[tool.poetry]\npackage-mode = false\n\n\
         [[tool.poetry.source]]\nname = \"local\"\nurl = \"{}\"\npriority = \"primary\"\n",
        index.url
    );
    std::fs::write(dir.path().join("pyproject.toml"), &pyproject).unwrap();
    let locked = std::process::Command::new(&poetry)
        .args(["lock", "--no-interaction"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path().join(".home"))
        .env("POETRY_CACHE_DIR", dir.path().join(".poetry-cache"))
        .env("POETRY_CONFIG_DIR", dir.path().join(".poetry-config"))
        .env("POETRY_KEYRING_ENABLED", "false")
        .env("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
        .output()
        .unwrap();
    assert!(
        locked.status.success(),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    let lock = std::fs::read_to_string(dir.path().join("poetry.lock")).unwrap();
    let tests = "import pyfmt\n\n\ndef test_pads():\n    assert pyfmt.pad('a', 3) == 'a  '\n\n\ndef test_formats():\n    assert pyfmt.fmt(7) == '7'\n";
    let files = vec![
        ("pyproject.toml", pyproject),
        ("poetry.lock", lock),
        ("tests/test_billing.py", tests.to_owned()),
    ];
    (files, poetry)
}

/// Poetry's installs take the archives the worker kept from its artifact cache: a second job
/// on the same lock downloads only what its lock step does.
// Multi-threaded: the test runs Poetry (blocking) against an index served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poetry_project_installs_from_the_download_cache_in_a_second_job() {
    let fixtures = tempfile::tempdir().unwrap();
    let mirror = fixtures.path().join("wheels");
    support::python_mirror::pyfmt(&mirror);
    let index = PythonIndex::start(&mirror).await;
    let (files, poetry) = poetry_project(&index, &mirror);
    // What the developer's lock fetched is not the jobs'.
    let before = index.file_downloads();
    let host = index
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let world = World::start(WorldOptions {
        files,
        adjust: Some(Box::new(move |s| {
            s.lockfiles.poetry = poetry;
            s.sandbox.allowed_hosts = vec![host];
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = job(&world, ("pyfmt", "PyPI", "PYSEC-2026-0001"), "poetry").await;
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "regressed", "{op}");
    assert_eq!(tests["main"]["passed"], 2, "{tests}");
    // Main's install downloaded pyfmt, pytest and pytest's dependencies, and the worker kept
    // them; the branch's took all but the fixed pyfmt from the cache.
    let main_kept = tests["main"]["downloads"]["kept"].as_u64().unwrap();
    assert!(main_kept >= 2, "{tests}");
    assert_eq!(tests["main"]["downloads"]["reused"], 0, "{tests}");
    assert_eq!(
        tests["branch"]["downloads"],
        json!({"reused": main_kept - 1, "kept": 1, "refused": 0}),
        "{tests}"
    );
    let first_job = index.file_downloads() - before;

    let again = job(
        &world,
        ("pyfmt", "PyPI", "PYSEC-2026-0002"),
        "poetry, second job",
    )
    .await;
    let tests = &again["output"]["tests"];
    assert_eq!(tests["outcome"], "regressed", "{tests}");
    assert_eq!(tests["main"]["cached"], true, "{tests}");
    assert_eq!(tests["branch"]["passed"], 1, "{tests}");
    assert_eq!(
        tests["branch"]["downloads"],
        json!({"reused": main_kept, "kept": 0, "refused": 0}),
        "{tests}"
    );
    // The first job's test installs downloaded what the worker kept; the second's nothing.
    let first_test_downloads = usize::try_from(main_kept + 1).unwrap();
    assert_eq!(
        index.file_downloads() - before - first_job,
        first_job - first_test_downloads,
        "the second job's test install downloaded nothing"
    );
    world.stop().await;
}

/// A yarn 2+ project (the release it commits, `node_modules` linking, `textfmt` 1.0.0 from
/// `registry`) locked by that release, with its own test commands.
fn berry_project(registry: &NpmRegistry) -> Vec<(&'static str, String)> {
    let release = std::env::var("REMEDIATOR_TEST_YARN_BERRY").unwrap_or_else(|_| {
        format!(
            "{}/target/tools-yarn-berry/node_modules/@yarnpkg/cli-dist/bin/yarn.js",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let release = std::fs::read_to_string(release).expect("the yarn Berry release");
    // A loopback registry over plain HTTP, whose packages carry no publication time; unzipping
    // on the main thread with no Wasm guard regions, which the sandbox's limits refuse.
    let rc = format!(
        "yarnPath: .yarn/releases/yarn-4.cjs\nnodeLinker: node-modules\nnpmRegistryServer: \"{}\"\n\
         unsafeHttpWhitelist:\n  - 127.0.0.1\nnpmMinimalAgeGate: 0\nenableTelemetry: false\n\
         taskPoolMode: async\n",
        registry.url.trim_end_matches('/')
    );
    let own = "[test]\ninstall = \"node --disable-wasm-trap-handler .yarn/releases/yarn-4.cjs install --immutable\"\ncommand = \"node --test\"\n";
    // Pinned: yarn would lock the newest release the range admits, the fix.
    let manifest = package_json(json!({"test": "node --test"})).replace("^1.0.0", "1.0.0");
    let mut files = vec![
        ("package.json", manifest),
        (".yarnrc.yml", rc),
        (".yarn/releases/yarn-4.cjs", release),
        (".remediator.toml", own.to_owned()),
        ("test/invoice.test.js", TESTS.to_owned()),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in &files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let locked = std::process::Command::new("node")
        .args([
            ".yarn/releases/yarn-4.cjs",
            "install",
            "--mode=update-lockfile",
        ])
        .current_dir(dir.path())
        .env("HOME", dir.path().join(".home"))
        .env("YARN_ENABLE_GLOBAL_CACHE", "0")
        .env("YARN_CACHE_FOLDER", dir.path().join(".yarn-cache"))
        .output()
        .unwrap();
    assert!(
        locked.status.success(),
        "{}",
        String::from_utf8_lossy(&locked.stdout)
    );
    let lock = std::fs::read_to_string(dir.path().join("yarn.lock")).unwrap();
    files.push(("yarn.lock", lock));
    files
}

/// yarn 2+'s installs take the zips the worker kept from its global cache: a second job on the
/// same lock downloads only what its lock step does.
// Multi-threaded: the test runs yarn (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yarn_berry_project_installs_from_the_download_cache_in_a_second_job() {
    let registry = registry(false).await;
    let files = berry_project(&registry);
    // What the developer's lock fetched is not the jobs'.
    let before = registry.tarball_downloads();
    let url = registry.url.clone();
    let world = World::start(WorldOptions {
        files,
        adjust: Some(Box::new(move |s| s.lockfiles.npm_registry = url)),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = job(
        &world,
        ("textfmt", "npm", "GHSA-tfmt-0001-0001"),
        "yarn Berry",
    )
    .await;
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{op}");
    assert_eq!(tests["branch"]["passed"], 2, "{tests}");
    let fresh = json!({"reused": 0, "kept": 1, "refused": 0});
    assert_eq!(tests["main"]["downloads"], fresh, "{tests}");
    assert_eq!(tests["branch"]["downloads"], fresh, "{tests}");
    let first_job = registry.tarball_downloads() - before;

    let again = job(
        &world,
        ("textfmt", "npm", "GHSA-tfmt-0002-0002"),
        "yarn Berry, second job",
    )
    .await;
    let tests = &again["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{tests}");
    assert_eq!(tests["branch"]["passed"], 2, "{tests}");
    assert_eq!(
        tests["branch"]["downloads"],
        json!({"reused": 1, "kept": 0, "refused": 0}),
        "{tests}"
    );
    // The first job's test installs downloaded two tarballs (main's and the branch's); the
    // second's none.
    assert_eq!(
        registry.tarball_downloads() - before - first_job,
        first_job - 2,
        "the second job's test install downloaded nothing"
    );
    world.stop().await;
}
