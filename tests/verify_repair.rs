//! The repair rounds end to end: a local npm registry whose fixed release of `textfmt` removed
//! `format`, a project whose source calls it, the real `npm ci` and `node --test` in the
//! sandbox, and a fake model on loopback that answers only when the failing test's output is
//! in the conversation. The repair must leave the tests passing (a ready pull request whose
//! commit carries it), be recorded round by round when it does not work (a draft), and never
//! touch a test file; a grouped job (two packages in one pull request) repairs the same way.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use remediator::verify::OnRegression;
use serde_json::{Value, json};
use support::fake_github::FakeGithub;
use support::fake_llm;
use support::npm_registry::NpmRegistry;
use support::remediation::{World, WorldOptions};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const END: Duration = Duration::from_secs(300);

const V1: &str =
    "exports.pad = (s, n) => String(s).padEnd(n);\nexports.format = (n) => String(n);\n";
const V1_FIXED: &str = "exports.pad = (s, n) => String(s).padEnd(n);\n";
const CHANGELOG: &str = "# textfmt\n\n## 1.0.1\n\n- Security: pad no longer overflows.\n- format() was removed: use String(n) instead.\n\n## 1.0.0\n\n- First release.\n";

const SOURCE: &str = "const textfmt = require('textfmt');\n\nexports.line = (label, n) => textfmt.pad(label, 6) + textfmt.format(n);\n";
const REPAIRED_CALL: &str = "textfmt.pad(label, 6) + String(n)";

const TESTS: &str = r#"const test = require('node:test');
const assert = require('node:assert');
const invoice = require('../src/invoice');

test('writes an invoice line', () => {
  assert.strictEqual(invoice.line('tea', 7), 'tea   7');
});
"#;

/// What the failing test says on the fixed tree: the model is only answered when it sees it.
const FAILURE: &str = "textfmt.format is not a function";

async fn registry() -> NpmRegistry {
    let registry =
        NpmRegistry::start(&[("textfmt", "1.0.0", &[]), ("textfmt", "1.0.1", &[])]).await;
    registry.add_files("textfmt", "1.0.0", &[("index.js", V1)]);
    registry.add_files(
        "textfmt",
        "1.0.1",
        &[("index.js", V1_FIXED), ("CHANGELOG.md", CHANGELOG)],
    );
    registry
}

fn files(registry: &NpmRegistry) -> Vec<(&'static str, String)> {
    let manifest = serde_json::to_string_pretty(&json!({
        "name": "invoices", "version": "2.0.0", "private": true,
        "scripts": {"test": "node --test"},
        "dependencies": {"textfmt": "^1.0.0"}}))
    .unwrap()
        + "\n";
    let lock = serde_json::to_string_pretty(&json!({"name": "invoices", "version": "2.0.0",
        "lockfileVersion": 3, "requires": true, "packages": {
            "": {"name": "invoices", "version": "2.0.0", "dependencies": {"textfmt": "^1.0.0"}},
            "node_modules/textfmt": {"version": "1.0.0",
                "resolved": format!("{}textfmt/-/textfmt-1.0.0.tgz", registry.url),
                "integrity": registry.integrity_of("textfmt", "1.0.0")}}}))
    .unwrap()
        + "\n";
    vec![
        ("package.json", manifest),
        ("package-lock.json", lock),
        ("src/invoice.js", SOURCE.to_owned()),
        ("test/invoice.test.js", TESTS.to_owned()),
    ]
}

/// How the fake model answers a conversation that shows the failure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Model {
    /// Replaces the removed call.
    Repairs,
    /// Calls another function that does not exist either (a new one each round).
    DoesNotWork,
    /// Rewrites the test's expectation first; once told that is refused, repairs the source.
    EditsTheTest,
    /// Replaces the removed call in the uv project (shown pytest's failure).
    RepairsPython,
}

fn answer(edits: Value, explanation: &str) -> String {
    json!({"edits": edits, "confidence": 0.8, "explanation": explanation}).to_string()
}

struct FakeModel {
    model: Model,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Respond for FakeModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        self.bodies.lock().unwrap().push(body.clone());
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let conversation: String = messages
            .iter()
            .filter_map(|m| m["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let needed = match self.model {
            Model::RepairsPython => PY_FAILURE,
            _ => FAILURE,
        };
        if !conversation.contains(needed) {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"message": "no failure shown"}}));
        }
        let last = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        let repair = answer(
            json!([{"path": "src/invoice.js", "search": "textfmt.format(n)", "replace": "String(n)"}]),
            "format() was removed in 1.0.1; String(n) does the same",
        );
        let content = match self.model {
            Model::Repairs => repair,
            Model::DoesNotWork => answer(
                json!([{"path": "src/invoice.js",
                        "content": SOURCE.replace("textfmt.format(n)", &format!("textfmt.formatNumber{}(n)", messages.len()))}]),
                "calls the new name",
            ),
            Model::RepairsPython => answer(
                json!([{"path": "invoice.py", "search": "pyfmt.fmt(n)", "replace": "str(n)"}]),
                "fmt() was removed in 1.0.1; str(n) does the same",
            ),
            Model::EditsTheTest if last.contains("(test_file)") => repair,
            Model::EditsTheTest => answer(
                json!([{"path": "test/invoice.test.js",
                        "search": "assert.strictEqual(invoice.line('tea', 7), 'tea   7');",
                        "replace": "assert.ok(true);"}]),
                "the test is out of date",
            ),
        };
        fake_llm::answer(request, &content, 900, 60)
    }
}

/// Runs the remediation of `textfmt` 1.0.0 -> 1.0.1 with `model` (none: no LLM configured);
/// returns the ended operation, the pull requests opened, the model's request bodies and the
/// world.
async fn remediate(model: Option<Model>) -> (Value, Vec<Value>, Vec<Value>, World) {
    remediate_with(model, OnRegression::Draft).await
}

async fn remediate_with(
    model: Option<Model>,
    on_regression: OnRegression,
) -> (Value, Vec<Value>, Vec<Value>, World) {
    let registry = registry().await;
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let llm = MockServer::start().await;
    if let Some(model) = model {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(FakeModel {
                model,
                bodies: bodies.clone(),
            })
            .mount(&llm)
            .await;
    }
    let url = registry.url.clone();
    let world = World::start(WorldOptions {
        files: files(&registry),
        llm_base_url: model.map(|_| format!("{}/v1", llm.uri())),
        adjust: Some(Box::new(move |s| {
            s.lockfiles.npm_registry = url;
            s.verify.on_regression = on_regression;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let assessment = world
        .add_affected("textfmt", "npm", "GHSA-tfmt-0001-0001", "1.0.0", "1.0.1")
        .await;
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    let bodies = bodies.lock().unwrap().clone();
    drop(registry);
    (op, github.created(), bodies, world)
}

/// `tests` (an operation's `output.tests`) says one repair round, which edited the invoice
/// writer, left `branch_passed` tests passing on the branch and none failing.
fn assert_repaired_in_one_round(tests: &Value, branch_passed: u64) {
    assert_eq!(tests["outcome"], "passed", "{tests}");
    assert_eq!(tests["repaired"], true, "{tests}");
    assert_eq!(
        (
            tests["branch"]["passed"].as_u64(),
            tests["branch"]["failed"].as_u64()
        ),
        (Some(branch_passed), Some(0)),
        "{tests}"
    );
    assert_eq!(
        tests["repair_rounds"],
        json!([{"round": 1, "failing_before": ["writes an invoice line"],
                "edited": ["src/invoice.js"], "refused": [], "failing_after": []}]),
        "{tests}"
    );
}

fn all_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_model_shown_the_failure_repairs_the_caller_and_the_pull_request_is_ready() {
    let (op, created, bodies, world) = remediate(Some(Model::Repairs)).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(tests["regressions"], json!([]), "{tests}");
    assert_repaired_in_one_round(tests, 1);
    assert_eq!(op["output"]["draft_reason"], Value::Null, "{op}");
    // What the model was shown: the failure, the caller, the change, the release's notes.
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let shown = all_text(&bodies[0]);
    for needle in [
        FAILURE,
        "\"src/invoice.js\"",
        "textfmt.pad(label, 6) + textfmt.format(n)",
        "+    \"textfmt\": \"^1.0.1\"",
        "format() was removed: use String(n) instead.",
        "Never edit tests",
    ] {
        assert!(shown.contains(needle), "{needle} not in {shown}");
    }
    assert!(
        !shown.contains("First release."),
        "notes not excerpted: {shown}"
    );
    // The branch's commit carries the repair beside the fix; the test is untouched.
    let branch = op["output"]["branch"].as_str().unwrap();
    let source = world.file_on_branch(branch, "src/invoice.js").unwrap();
    assert!(source.contains(REPAIRED_CALL), "{source}");
    assert_eq!(
        world
            .file_on_branch(branch, "test/invoice.test.js")
            .unwrap(),
        TESTS
    );
    assert_eq!(
        op["output"]["changed_files"],
        json!(["package.json", "package-lock.json", "src/invoice.js"])
    );
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("**Repair rounds: 1**"), "{body}");
    assert!(
        body.contains("No test that passes on the default branch fails with this change."),
        "{body}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_repair_that_does_not_work_gives_a_draft_naming_the_test_with_every_round() {
    let (op, created, bodies, world) = remediate(Some(Model::DoesNotWork)).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "regressed", "{tests}");
    assert_eq!(tests["repaired"], false, "{tests}");
    let rounds = tests["repair_rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{tests}");
    for (i, round) in rounds.iter().enumerate() {
        assert_eq!(round["round"], i + 1);
        assert_eq!(round["edited"], json!(["src/invoice.js"]), "{round}");
        assert_eq!(
            round["failing_after"],
            json!(["writes an invoice line"]),
            "{round}"
        );
    }
    assert_eq!(bodies.len(), 3);
    // Each later round is told what the tests said after the last edits.
    let later = all_text(&bodies[1]);
    assert!(
        later.contains("Your edits were applied and the tests ran again"),
        "{later}"
    );
    assert!(later.contains("textfmt.formatNumber"), "{later}");
    assert_eq!(tests["regressions"][0]["name"], "writes an invoice line");
    assert!(
        op["output"]["draft_reason"]
            .as_str()
            .is_some_and(|r| r.contains("writes an invoice line")
                && r.contains("after 3 LLM repair round(s)")),
        "{op}"
    );
    assert_eq!(created[0]["draft"], true, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("**Repair rounds: 3**"), "{body}");
    assert!(body.contains("**writes an invoice line**"), "{body}");
    // A repair that did not work is not committed.
    let branch = op["output"]["branch"].as_str().unwrap();
    assert_eq!(
        world.file_on_branch(branch, "src/invoice.js").unwrap(),
        SOURCE
    );
    assert_eq!(
        op["output"]["changed_files"],
        json!(["package.json", "package-lock.json"])
    );
    world.stop().await;
}

#[tokio::test]
async fn an_edit_to_a_test_file_is_refused_sent_back_and_never_committed() {
    let (op, created, bodies, world) = remediate(Some(Model::EditsTheTest)).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    let rounds = tests["repair_rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{tests}");
    assert_eq!(rounds[0]["edited"], json!([]), "{tests}");
    let refused = rounds[0]["refused"][0].as_str().unwrap();
    assert!(
        refused.contains("(test_file) in test/invoice.test.js"),
        "{refused}"
    );
    assert_eq!(
        rounds[0]["failing_after"],
        json!(["writes an invoice line"])
    );
    assert_eq!(rounds[1]["edited"], json!(["src/invoice.js"]), "{tests}");
    // The refusal went back to the model in the next request.
    assert_eq!(bodies.len(), 2);
    let messages = bodies[1]["messages"].as_array().unwrap();
    let last = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(
        last.contains("patch policy violation (test_file) in test/invoice.test.js"),
        "{last}"
    );
    assert_eq!(tests["outcome"], "passed", "{tests}");
    let branch = op["output"]["branch"].as_str().unwrap();
    assert_eq!(
        world
            .file_on_branch(branch, "test/invoice.test.js")
            .unwrap(),
        TESTS
    );
    assert!(
        !op["output"]["changed_files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "test/invoice.test.js"),
        "{op}"
    );
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    world.stop().await;
}

#[tokio::test]
async fn with_on_regression_fail_a_repaired_fix_still_opens_its_pull_request() {
    let (op, created, _bodies, world) =
        remediate_with(Some(Model::Repairs), OnRegression::Fail).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(op["output"]["tests"]["repaired"], true, "{op}");
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    world.stop().await;
}

#[tokio::test]
async fn with_on_regression_fail_an_unrepaired_fix_fails_naming_the_rounds() {
    let (op, created, _bodies, world) =
        remediate_with(Some(Model::DoesNotWork), OnRegression::Fail).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("writes an invoice line") && error.contains("after 3 LLM repair round(s)"),
        "{error}"
    );
    assert!(created.is_empty());
    assert_eq!(world.branches(), ["main"]);
    world.stop().await;
}

#[tokio::test]
async fn with_no_model_configured_a_regression_drafts_at_once() {
    let (op, created, _bodies, world) = remediate(None).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "regressed", "{tests}");
    assert_eq!(tests["repair_rounds"], json!([]), "{tests}");
    assert_eq!(tests["repaired"], false, "{tests}");
    assert_eq!(created[0]["draft"], true, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(!body.contains("Repair rounds"), "{body}");
    world.stop().await;
}

/// What pytest says on the fixed uv tree.
const PY_FAILURE: &str = "AttributeError: module 'pyfmt' has no attribute 'fmt'";
const PY_SOURCE: &str =
    "import pyfmt\n\n\ndef line(label, n):\n    return pyfmt.pad(label, 6) + pyfmt.fmt(n)\n";
const PY_TESTS: &str =
    "from invoice import line\n\n\ndef test_line():\n    assert line('tea', 7) == 'tea   7'\n";

#[tokio::test]
async fn a_uv_project_broken_by_the_fix_is_repaired_with_the_wheels_notes() {
    let fixtures = tempfile::tempdir().unwrap();
    let mirror = fixtures.path().join("wheels");
    support::python_mirror::pyfmt(&mirror);
    let project = tempfile::tempdir().unwrap();
    let pyproject = "[project]\nname = \"billing\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"pyfmt>=1.0.0,<1.0.1\"]\n\n[dependency-groups]\ndev = [\"pytest\"]\n\n[tool.uv]\nenvironments = [\"sys_platform == 'linux'\"]\n\n[tool.pytest.ini_options]\npythonpath = [\".\"]\n";
    std::fs::write(project.path().join("pyproject.toml"), pyproject).unwrap();
    let (uv, lock) = support::python_mirror::uv_lock(project.path(), &mirror);
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(FakeModel {
            model: Model::RepairsPython,
            bodies: bodies.clone(),
        })
        .mount(&llm)
        .await;
    let (uv_path, find_links) = (uv.clone(), mirror.to_string_lossy().into_owned());
    let world = World::start(WorldOptions {
        files: vec![
            ("pyproject.toml", pyproject.to_owned()),
            ("uv.lock", lock),
            ("invoice.py", PY_SOURCE.to_owned()),
            ("tests/test_billing.py", PY_TESTS.to_owned()),
        ],
        llm_base_url: Some(format!("{}/v1", llm.uri())),
        adjust: Some(Box::new(move |s| {
            s.lockfiles.uv = uv_path;
            s.lockfiles.python_find_links = find_links;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let assessment = world
        .add_affected("pyfmt", "PyPI", "PYSEC-2026-0001", "1.0.0", "1.0.1")
        .await;
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let tests = &op["output"]["tests"];
    assert_eq!(tests["outcome"], "passed", "{tests}");
    assert_eq!(tests["repaired"], true, "{tests}");
    assert_eq!(
        tests["repair_rounds"][0]["failing_before"],
        json!(["tests/test_billing.py::test_line"]),
        "{tests}"
    );
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let shown = all_text(&bodies[0]);
    assert!(shown.contains(PY_FAILURE), "{shown}");
    assert!(shown.contains("\"invoice.py\""), "{shown}");
    assert!(shown.contains("fmt() was removed: use str(n)."), "{shown}");
    assert!(shown.contains("pyfmt-1.0.1.dist-info/METADATA"), "{shown}");
    let branch = op["output"]["branch"].as_str().unwrap();
    let source = world.file_on_branch(branch, "invoice.py").unwrap();
    assert!(source.contains("pyfmt.pad(label, 6) + str(n)"), "{source}");
    let created = github.created();
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    world.stop().await;
}

/// The second package of the grouped case: its fixed release breaks nothing.
const NUMFMT: &str = "exports.round = (n) => Math.round(n);\n";
const NUMFMT_CHANGELOG: &str = "# numfmt\n\n## 1.0.1\n\n- Security: round() no longer loops on NaN.\n\n## 1.0.0\n\n- First release.\n";
const TOTAL: &str = "const numfmt = require('numfmt');\n\nexports.total = (xs) => numfmt.round(xs.reduce((a, b) => a + b, 0));\n";
const TOTAL_TESTS: &str = r#"const test = require('node:test');
const assert = require('node:assert');
const { total } = require('../src/total');

test('adds an invoice up', () => {
  assert.strictEqual(total([1.2, 2.4]), 4);
});
"#;

/// The registry and the project of the grouped case: `textfmt` (whose fix breaks the invoice
/// line) and `numfmt` (whose fix breaks nothing), both at 1.0.0 with a fix in 1.0.1.
async fn grouped_registry() -> (NpmRegistry, Vec<(&'static str, String)>) {
    let registry = registry().await;
    for version in ["1.0.0", "1.0.1"] {
        registry.publish(("numfmt", version, &[]));
    }
    registry.add_files("numfmt", "1.0.0", &[("index.js", NUMFMT)]);
    registry.add_files(
        "numfmt",
        "1.0.1",
        &[("index.js", NUMFMT), ("CHANGELOG.md", NUMFMT_CHANGELOG)],
    );
    let dependencies = json!({"numfmt": "^1.0.0", "textfmt": "^1.0.0"});
    let manifest = serde_json::to_string_pretty(&json!({
        "name": "invoices", "version": "2.0.0", "private": true,
        "scripts": {"test": "node --test"}, "dependencies": dependencies}))
    .unwrap()
        + "\n";
    let installed = |name: &str| {
        json!({"version": "1.0.0",
            "resolved": format!("{}{name}/-/{name}-1.0.0.tgz", registry.url),
            "integrity": registry.integrity_of(name, "1.0.0")})
    };
    let lock = serde_json::to_string_pretty(&json!({"name": "invoices", "version": "2.0.0",
        "lockfileVersion": 3, "requires": true, "packages": {
            "": {"name": "invoices", "version": "2.0.0", "dependencies": dependencies},
            "node_modules/numfmt": installed("numfmt"),
            "node_modules/textfmt": installed("textfmt")}}))
    .unwrap()
        + "\n";
    let files = vec![
        ("package.json", manifest),
        ("package-lock.json", lock),
        ("src/invoice.js", SOURCE.to_owned()),
        ("src/total.js", TOTAL.to_owned()),
        ("test/invoice.test.js", TESTS.to_owned()),
        ("test/total.test.js", TOTAL_TESTS.to_owned()),
    ];
    (registry, files)
}

#[tokio::test]
async fn a_grouped_fix_that_breaks_a_test_is_repaired_and_its_pull_request_is_ready() {
    let (registry, files) = grouped_registry().await;
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(FakeModel {
            model: Model::Repairs,
            bodies: bodies.clone(),
        })
        .mount(&llm)
        .await;
    let url = registry.url.clone();
    let world = World::start(WorldOptions {
        files,
        llm_base_url: Some(format!("{}/v1", llm.uri())),
        adjust: Some(Box::new(move |s| {
            s.lockfiles.npm_registry = url;
            s.worker.group = remediator::config::Grouping::Repository;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    world
        .add_affected("numfmt", "npm", "GHSA-nfmt-0001-0001", "1.0.0", "1.0.1")
        .await;
    let assessment = world
        .add_affected("textfmt", "npm", "GHSA-tfmt-0001-0001", "1.0.0", "1.0.1")
        .await;
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["group"], "repository", "{op}");
    assert_eq!(output["packages"].as_array().map(Vec::len), Some(2), "{op}");
    // Both upgrades' tests pass on the branch after one round, which the output records.
    let tests = &output["tests"];
    assert_repaired_in_one_round(tests, 2);
    assert_eq!(output["draft_reason"], Value::Null, "{op}");
    // The model was told of both packages, the files naming either and both releases' notes.
    // (The world's own lodash advisory, not in this manifest, asked the patch writer first.)
    let repairs: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(all_text)
        .filter(|text| text.contains("You repair a project"))
        .collect();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    let shown = &repairs[0];
    for needle in [
        FAILURE,
        "The fix upgraded these packages together",
        "\"package\":\"textfmt\"",
        "\"package\":\"numfmt\"",
        "\"version_now\":\"1.0.1\"",
        "\"src/invoice.js\"",
        "\"src/total.js\"",
        "+    \"textfmt\": \"^1.0.1\"",
        "+    \"numfmt\": \"^1.0.1\"",
        "format() was removed: use String(n) instead.",
        "round() no longer loops on NaN.",
    ] {
        assert!(shown.contains(needle), "{needle} not in {shown}");
    }
    // The grouped commit carries the repair beside both fixes; the tests are untouched.
    let branch = output["branch"].as_str().unwrap();
    let source = world.file_on_branch(branch, "src/invoice.js").unwrap();
    assert!(source.contains(REPAIRED_CALL), "{source}");
    let manifest = world.file_on_branch(branch, "package.json").unwrap();
    assert!(
        manifest.contains("\"numfmt\": \"^1.0.1\"") && manifest.contains("\"textfmt\": \"^1.0.1\""),
        "{manifest}"
    );
    assert_eq!(
        world
            .file_on_branch(branch, "test/invoice.test.js")
            .unwrap(),
        TESTS
    );
    assert_eq!(
        output["changed_files"],
        json!(["package.json", "package-lock.json", "src/invoice.js"])
    );
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], false, "{}", created[0]);
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("**Repair rounds: 1**"), "{body}");
    drop(registry);
    world.stop().await;
}
