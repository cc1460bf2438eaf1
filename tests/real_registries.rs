//! Lock files against the real registries, with the default configuration (issue 24, item 7).
//!
//! Every case runs the worker as a new user would: `World::start` with nothing but the
//! repository's files, so `lockfiles.*` keeps its defaults: each tool is found on PATH (npm,
//! pnpm, yarn 1, a yarn Berry release the repository commits, rustup's `cargo` proxy, uv,
//! Poetry, pip-compile, the way the README and `scripts/test` install them), no registry is
//! set, and the tools resolve from the real npm, PyPI and Cargo registries through this
//! machine's own network (a TLS-inspecting one, whose CA only the system trust store holds).
//!
//! The repositories are made as their developers made them: each lock is written at test time
//! by the real tool (outside the worker's sandbox, scripts off, caches in a temporary
//! directory, the user's own client configuration), first holding an old, genuinely vulnerable
//! release, then with the manifest relaxed to a range the tool keeps that release under. So no
//! registry host appears in this file: the locks carry whatever the clients are configured
//! with. Before the worker starts, each case checks the lock really resolves the vulnerable
//! release (a case cannot pass by finding nothing to fix).
//!
//! Each case then asserts what a user needs from the pull request: the operation succeeded
//! with no vulnerable copy left by its own account; the pushed branch's lock, parsed here,
//! resolves no copy below the fix and at least one at or above it; and the tool's own frozen
//! check (`npm ci --dry-run`, `pnpm install --frozen-lockfile`, `yarn install
//! --frozen-lockfile` / `--immutable`, `cargo metadata --locked`, `uv lock --locked`, `poetry
//! check --lock`, pip-compile run again) accepts the branch as it is.
//!
//! Every case has its own world (database, queues, git server, scratch), so they run in
//! parallel; each prints its timings to stderr (`--nocapture` shows them) as
//! `real_registries: <case>: ...`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_github::FakeGithub;
use support::remediation::{World, WorldOptions};

/// How long one operation may run: far above the ~60 s a case takes, so that a slow registry
/// fails the case with the operation's state rather than hanging it.
const OPERATION_DEADLINE: Duration = Duration::from_secs(300);
/// How long one developer-side tool run (fixture set-up, a tool's own check) may take.
const TOOL_DEADLINE: Duration = Duration::from_secs(240);

/// One advisory as the security platform reports it: the finding the worker is asked to fix.
#[derive(Debug, Clone, Copy)]
struct Advisory {
    package: &'static str,
    /// The OSV ecosystem name.
    ecosystem: &'static str,
    id: &'static str,
    /// The vulnerable release the repository's lock holds.
    installed: &'static str,
    /// The first release with the fix.
    fixed: &'static str,
}

/// lodash: command injection through `template` (CVE-2021-23337).
const LODASH: Advisory = Advisory {
    package: "lodash",
    ecosystem: "npm",
    id: "GHSA-35jh-r3h4-6jhm",
    installed: "4.17.20",
    fixed: "4.17.21",
};
/// minimist: prototype pollution (CVE-2021-44906); mkdirp 0.5.5 asks for `^1.2.5`.
const MINIMIST: Advisory = Advisory {
    package: "minimist",
    ecosystem: "npm",
    id: "GHSA-xvch-5gv4-984h",
    installed: "1.2.5",
    fixed: "1.2.6",
};
/// path-to-regexp: ReDoS (CVE-2024-45296); express 4.19.2 pins 0.1.7 exactly, and only
/// express 4.20.0 and later ask for a fixed release.
const PATH_TO_REGEXP: Advisory = Advisory {
    package: "path-to-regexp",
    ecosystem: "npm",
    id: "GHSA-9wv6-86v2-598j",
    installed: "0.1.7",
    fixed: "0.1.10",
};
/// smallvec: buffer overflow in `insert_many` (RUSTSEC-2021-0003).
const SMALLVEC: Advisory = Advisory {
    package: "smallvec",
    // The OSV ecosystem's name (what scanners report), not a host this suite contacts.
    ecosystem: "crates.io",
    id: "GHSA-43w2-9j62-hq99",
    installed: "1.6.0",
    fixed: "1.6.1",
};
/// regex: ReDoS on untrusted patterns (CVE-2022-24713); env_logger 0.9 asks for `^1.0.3`.
const REGEX: Advisory = Advisory {
    package: "regex",
    ecosystem: SMALLVEC.ecosystem,
    id: "GHSA-m5pq-gvj9-9vr8",
    installed: "1.5.4",
    fixed: "1.5.5",
};
/// requests: `verify=False` sticks to a Session's connections (CVE-2024-35195).
const REQUESTS: Advisory = Advisory {
    package: "requests",
    ecosystem: "PyPI",
    id: "GHSA-9wx4-h78v-vm56",
    installed: "2.31.0",
    fixed: "2.32.0",
};
/// urllib3: Proxy-Authorization kept across origins (CVE-2024-37891); requests asks for
/// `urllib3<3,>=1.21.1`.
const URLLIB3: Advisory = Advisory {
    package: "urllib3",
    ecosystem: "PyPI",
    id: "GHSA-34jh-p97f-mpxf",
    installed: "2.2.1",
    fixed: "2.2.2",
};

// ---------------------------------------------------------------------------------------------
// The cases.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_direct_lodash_is_fixed_and_npm_ci_accepts_the_lock() {
    let case = "npm direct lodash 4.17.20";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::Npm,
            json!({"lodash": "^4.17.20"}),
            &[("lodash", "4.17.20")],
        )
    };
    run_case(case, Tool::Npm, project, LODASH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_transitive_minimist_under_mkdirp_is_fixed_and_npm_ci_accepts_the_lock() {
    let case = "npm transitive minimist 1.2.5 (mkdirp ^0.5.5)";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::Npm,
            json!({"mkdirp": "^0.5.5"}),
            &[("mkdirp", "0.5.5"), ("minimist", "1.2.5")],
        )
    };
    run_case(case, Tool::Npm, project, MINIMIST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_path_to_regexp_pinned_exactly_by_express_is_fixed_by_a_newer_express() {
    let case = "npm exact pin path-to-regexp 0.1.7 (express 4.19.2)";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::Npm,
            json!({"express": "^4.19.2"}),
            &[("express", "4.19.2")],
        )
    };
    // Fixed by the parent: an express that asks for a fixed path-to-regexp, not an override
    // (which would also leave a draft).
    let express_moved_up = |world: &World, branch: &str, _op: &Value| {
        let lock = world.file_on_branch(branch, "package-lock.json").unwrap();
        let express = Tool::Npm.copies(&lock, "express");
        assert!(
            !express.is_empty() && express.iter().all(|v| !is_below(v, "4.20.0")),
            "express {express:?} on the branch"
        );
        let manifest: Value =
            serde_json::from_str(&world.file_on_branch(branch, "package.json").unwrap()).unwrap();
        assert_eq!(manifest.get("overrides"), None, "{manifest:#}");
    };
    run_case_checked(
        case,
        Tool::Npm,
        project,
        PATH_TO_REGEXP,
        None,
        express_moved_up,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_direct_lodash_is_fixed_and_a_frozen_install_accepts_the_lock() {
    let case = "pnpm direct lodash 4.17.20";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::Pnpm,
            json!({"lodash": "^4.17.20"}),
            &[("lodash", "4.17.20")],
        )
    };
    run_case(case, Tool::Pnpm, project, LODASH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_transitive_minimist_under_mkdirp_is_fixed_and_a_frozen_install_accepts_the_lock() {
    let case = "pnpm transitive minimist 1.2.5 (mkdirp ^0.5.5)";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::Pnpm,
            json!({"mkdirp": "^0.5.5"}),
            &[("mkdirp", "0.5.5"), ("minimist", "1.2.5")],
        )
    };
    run_case(case, Tool::Pnpm, project, MINIMIST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_classic_direct_lodash_is_fixed_and_a_frozen_install_accepts_the_lock() {
    let case = "yarn 1 direct lodash 4.17.20";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::YarnClassic,
            json!({"lodash": "^4.17.20"}),
            &[("lodash", "4.17.20")],
        )
    };
    run_case(case, Tool::YarnClassic, project, LODASH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_classic_transitive_minimist_under_mkdirp_is_fixed_and_a_frozen_install_accepts_the_lock()
 {
    let case = "yarn 1 transitive minimist 1.2.5 (mkdirp ^0.5.5)";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::YarnClassic,
            json!({"mkdirp": "^0.5.5"}),
            &[("mkdirp", "0.5.5"), ("minimist", "1.2.5")],
        )
    };
    run_case(case, Tool::YarnClassic, project, MINIMIST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_direct_lodash_is_fixed_and_an_immutable_install_accepts_the_lock() {
    let case = "yarn Berry direct lodash 4.17.20";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::YarnBerry,
            json!({"lodash": "^4.17.20"}),
            &[("lodash", "4.17.20")],
        )
    };
    run_case(case, Tool::YarnBerry, project, LODASH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_transitive_minimist_under_mkdirp_is_fixed_and_an_immutable_install_accepts_the_lock()
 {
    let case = "yarn Berry transitive minimist 1.2.5 (mkdirp ^0.5.5)";
    let project = |dev: &Developer| {
        js_project(
            dev,
            Tool::YarnBerry,
            json!({"mkdirp": "^0.5.5"}),
            &[("mkdirp", "0.5.5"), ("minimist", "1.2.5")],
        )
    };
    run_case(case, Tool::YarnBerry, project, MINIMIST).await;
}

/// The pnpm release a project written with pnpm 8 asks for.
const PNPM_8: &str = "8.15.9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_8_named_by_package_manager_updates_its_own_lock_format() {
    let case = "pnpm 8 (packageManager) direct lodash 4.17.20";
    let project = |dev: &Developer| pnpm_8_project(dev, true);
    let check: FrozenCheck = Box::new(pnpm_8_frozen_check);
    run_case_checked(
        case,
        Tool::Pnpm,
        project,
        LODASH,
        Some(check),
        |world, branch, _op| {
            let op_tool = world.file_on_branch(branch, "pnpm-lock.yaml").unwrap();
            assert!(op_tool.starts_with("lockfileVersion: '6.0'"), "{op_tool}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pnpm_8_projects_tests_run_with_pnpm_8_on_both_trees() {
    let case = "pnpm 8 (packageManager) direct lodash 4.17.20, the project's tests";
    let project = |dev: &Developer| {
        let mut files = pnpm_8_project(dev, true);
        for (name, text) in files.iter_mut() {
            if *name == "package.json" {
                let mut manifest: Value = serde_json::from_str(text).unwrap();
                manifest["scripts"] = json!({"test": "node --test test/"});
                *text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
            }
        }
        files.push((
            "test/chunk.test.js",
            "const test = require(\"node:test\");\nconst assert = require(\"node:assert\");\n\
             const _ = require(\"lodash\");\ntest(\"chunks\", () => \
             assert.deepEqual(_.chunk([1, 2, 3], 2), [[1, 2], [3]]));\n"
                .to_owned(),
        ));
        files
    };
    let check: FrozenCheck = Box::new(pnpm_8_frozen_check);
    let tested = |_: &World, _: &str, op: &Value| {
        let tests = &op["output"]["tests"];
        assert_eq!(tests["outcome"], "passed", "{tests:#}");
        let command = tests["command"].as_str().unwrap_or_default();
        assert!(
            command.contains(&format!("pnpm@{PNPM_8}")),
            "the tests ran with the pnpm the project names: {command}"
        );
        for side in ["main", "branch"] {
            assert_eq!(tests[side]["passed"], 1, "{side}: {tests:#}");
        }
    };
    run_case_checked(case, Tool::Pnpm, project, LODASH, Some(check), tested).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pnpm_8_lock_without_package_manager_is_updated_by_pnpm_8() {
    let case = "pnpm 8 (lockfileVersion 6.0) direct lodash 4.17.20";
    let project = |dev: &Developer| pnpm_8_project(dev, false);
    let check: FrozenCheck = Box::new(pnpm_8_frozen_check);
    run_case_checked(
        case,
        Tool::Pnpm,
        project,
        LODASH,
        Some(check),
        |world, branch, _op| {
            let lock = world.file_on_branch(branch, "pnpm-lock.yaml").unwrap();
            assert!(lock.starts_with("lockfileVersion: '6.0'"), "{lock}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_named_by_package_manager_without_a_committed_release_is_fetched() {
    let case = "yarn Berry (packageManager, no yarnPath) direct lodash 4.17.20";
    let project = |dev: &Developer| {
        let mut files = js_project(
            dev,
            Tool::YarnBerry,
            json!({"lodash": "^4.17.20"}),
            &[("lodash", "4.17.20")],
        );
        // As corepack users have it: the release named in package.json, none committed.
        let release = files
            .iter()
            .find(|(name, _)| name.starts_with(".yarn/releases/"))
            .map(|(name, _)| *name)
            .unwrap();
        let version = release
            .trim_start_matches(".yarn/releases/yarn-")
            .trim_end_matches(".cjs")
            .to_owned();
        files.retain(|(name, _)| *name != release && *name != ".yarnrc.yml");
        for (name, text) in files.iter_mut() {
            if *name == "package.json" {
                let mut manifest: Value = serde_json::from_str(text).unwrap();
                manifest["packageManager"] = json!(format!("yarn@{version}"));
                *text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
            }
        }
        files
    };
    let check: FrozenCheck = Box::new(|dev: &Developer, dir: &Path, _lock: &str| {
        let release = yarn_berry_release();
        dev.run(
            "node",
            &[
                release.to_str().unwrap(),
                "install",
                "--immutable",
                "--mode=skip-build",
            ],
            dir,
        );
    });
    run_case_checked(
        case,
        Tool::YarnBerry,
        project,
        LODASH,
        Some(check),
        |_, _, _| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_manager_release_whose_hash_differs_is_refused_naming_it() {
    let dev = Developer::new();
    let mut files = pnpm_8_project(&dev, true);
    let wrong = format!("pnpm@{PNPM_8}+sha512.{}", "0".repeat(128));
    for (name, text) in files.iter_mut() {
        if *name == "package.json" {
            let mut manifest: Value = serde_json::from_str(text).unwrap();
            manifest["packageManager"] = json!(wrong);
            *text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
        }
    }
    let world = World::start(WorldOptions {
        files,
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let assessment = world
        .add_affected_fixed_in(
            LODASH.package,
            LODASH.ecosystem,
            LODASH.id,
            LODASH.installed,
            &[LODASH.fixed],
        )
        .await;
    let operation = world.request(assessment).await;
    let op = world.wait_for_end(operation, OPERATION_DEADLINE).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op:#}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("packageManager") && error.contains("sha512"),
        "{error}"
    );
    assert!(github.created().is_empty(), "no pull request");
    world.stop().await;
}

/// Go: the module proxy is not reachable from this workplace's machines, so a Go job cannot
/// succeed here; it must fail at once saying why (the proxy's name does not resolve), not hang
/// or blame the project. Where the proxy is reachable, the fix must be real instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_job_without_the_module_proxy_fails_saying_so() {
    let started = Instant::now();
    let go_mod = "module example.com/app\n\ngo 1.21\n\nrequire golang.org/x/text v0.3.7\n";
    let world = World::start(WorldOptions {
        files: vec![("go.mod", go_mod.to_owned())],
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let assessment = world
        .add_affected_fixed_in(
            "golang.org/x/text",
            "Go",
            "GO-2022-1059",
            "0.3.7",
            &["0.3.8"],
        )
        .await;
    let operation = world.request(assessment).await;
    let op = world.wait_for_end(operation, OPERATION_DEADLINE).await;
    if op["status"] == "ASYNC_OPERATION_STATUS_SUCCEEDED" {
        // A machine that reaches the module proxy: then the fix must be real.
        assert_eq!(op["output"]["verification"]["vulnerable_left"], 0, "{op:#}");
        world.stop().await;
        return;
    }
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op:#}");
    let error = op["error_message"].as_str().unwrap();
    assert!(error.contains("step lock failed: `go get"), "{error}");
    assert!(
        error.contains("refused") && error.contains("cannot resolve"),
        "the error says the module proxy cannot be reached: {error}"
    );
    assert!(github.created().is_empty(), "no pull request");
    eprintln!(
        "real_registries: go without its module proxy: FAILED as expected in {:.1} s: {error}",
        started.elapsed().as_secs_f64()
    );
    world.stop().await;
}

/// A pnpm 8 project (lockfile v6) declaring lodash `^4.17.20` and locking 4.17.20, made by
/// pnpm 8 itself (fetched by npx); with `packageManager` naming it when `named`.
fn pnpm_8_project(dev: &Developer, named: bool) -> Files {
    let dir = tempfile::tempdir_in(dev.dir.path()).unwrap();
    let dir = dir.path();
    let extra = match named {
        true => json!({"packageManager": format!("pnpm@{PNPM_8}")}),
        false => json!({}),
    };
    let pnpm = format!("pnpm@{PNPM_8}");
    let lock = [
        "--yes",
        pnpm.as_str(),
        "install",
        "--lockfile-only",
        "--ignore-scripts",
    ];
    write_file(
        dir,
        "package.json",
        &package_json(&json!({"lodash": "4.17.20"}), extra.clone()),
    );
    dev.run("npx", &lock, dir);
    write_file(
        dir,
        "package.json",
        &package_json(&json!({"lodash": "^4.17.20"}), extra),
    );
    dev.run("npx", &lock, dir);
    let files = read_files(dir, &["package.json", "pnpm-lock.yaml"]);
    assert!(
        files[1].1.starts_with("lockfileVersion: '6.0'"),
        "pnpm 8 writes lockfile v6: {}",
        files[1].1
    );
    files
}

/// pnpm 8's own frozen check of the branch.
fn pnpm_8_frozen_check(dev: &Developer, dir: &Path, _lock: &str) {
    let pnpm = format!("pnpm@{PNPM_8}");
    dev.run(
        "npx",
        &[
            "--yes",
            pnpm.as_str(),
            "install",
            "--frozen-lockfile",
            "--lockfile-only",
            "--ignore-scripts",
        ],
        dir,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_direct_smallvec_is_fixed_and_cargo_accepts_the_lock_as_locked() {
    let case = "Cargo direct smallvec 1.6.0";
    let project = |dev: &Developer| cargo_project(dev, "smallvec = \"1.6.0\"\n", SMALLVEC);
    run_case(case, Tool::Cargo, project, SMALLVEC).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_with_a_rust_toolchain_file_runs_the_workers_toolchain_and_says_so() {
    let case = "Cargo direct smallvec 1.6.0, rust-toolchain.toml naming an uninstalled release";
    let project = |dev: &Developer| {
        let mut files = cargo_project(dev, "smallvec = \"1.6.0\"\n", SMALLVEC);
        // A channel this machine has not installed: rustup's proxy would try to download it.
        files.push((
            "rust-toolchain.toml",
            "[toolchain]\nchannel = \"1.70.0\"\n".to_owned(),
        ));
        files
    };
    let says_so = |_: &World, _: &str, op: &Value| {
        let tool = op["output"]["verification"]["tool"]
            .as_str()
            .unwrap_or_default();
        assert!(
            tool.contains("rust-toolchain.toml is not installed"),
            "the job says which toolchain ran: {tool}"
        );
    };
    // The developer's own check runs their rustup's default toolchain, as the worker did.
    let frozen: FrozenCheck = Box::new(|dev: &Developer, dir: &Path, lock: &str| {
        std::fs::remove_file(dir.join("rust-toolchain.toml")).unwrap();
        Tool::Cargo.frozen_check(dev, dir, lock);
    });
    run_case_checked(case, Tool::Cargo, project, SMALLVEC, Some(frozen), says_so).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_transitive_regex_under_env_logger_is_fixed_and_cargo_accepts_the_lock_as_locked() {
    let case = "Cargo transitive regex 1.5.4 (env_logger 0.9)";
    let project = |dev: &Developer| cargo_project(dev, "env_logger = \"0.9.0\"\n", REGEX);
    run_case(case, Tool::Cargo, project, REGEX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_direct_requests_is_fixed_and_uv_accepts_the_lock_as_locked() {
    let case = "uv direct requests 2.31.0";
    let project = |dev: &Developer| {
        python_project(
            dev,
            Tool::Uv,
            &["requests>=2.31.0"],
            &[("requests", "2.31.0")],
        )
    };
    run_case(case, Tool::Uv, project, REQUESTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_transitive_urllib3_under_requests_is_fixed_and_uv_accepts_the_lock_as_locked() {
    let case = "uv transitive urllib3 2.2.1 (requests)";
    let project = |dev: &Developer| {
        python_project(
            dev,
            Tool::Uv,
            &["requests>=2.32.3"],
            &[("requests", "2.32.3"), ("urllib3", "2.2.1")],
        )
    };
    run_case(case, Tool::Uv, project, URLLIB3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poetry_direct_requests_is_fixed_and_poetry_accepts_the_lock() {
    let case = "Poetry direct requests 2.31.0";
    let project = |dev: &Developer| {
        python_project(
            dev,
            Tool::Poetry,
            &["requests>=2.31.0"],
            &[("requests", "2.31.0")],
        )
    };
    run_case(case, Tool::Poetry, project, REQUESTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poetry_transitive_urllib3_under_requests_is_fixed_and_poetry_accepts_the_lock() {
    let case = "Poetry transitive urllib3 2.2.1 (requests)";
    let project = |dev: &Developer| {
        python_project(
            dev,
            Tool::Poetry,
            &["requests>=2.32.3"],
            &[("requests", "2.32.3"), ("urllib3", "2.2.1")],
        )
    };
    run_case(case, Tool::Poetry, project, URLLIB3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_compile_direct_requests_in_a_subfolder_is_fixed_and_recompiling_keeps_it() {
    let case = "pip-compile direct requests 2.31.0 (requirements/dev.txt)";
    let project = |dev: &Developer| {
        python_project(
            dev,
            Tool::PipCompile,
            &["requests>=2.31.0"],
            &[("requests", "2.31.0")],
        )
    };
    run_case(case, Tool::PipCompile, project, REQUESTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_compile_transitive_urllib3_in_a_subfolder_is_fixed_and_recompiling_keeps_it() {
    let case = "pip-compile transitive urllib3 2.2.1 (requirements/dev.txt)";
    let project = |dev: &Developer| {
        python_project(
            dev,
            Tool::PipCompile,
            &["requests>=2.32.3"],
            &[("requests", "2.32.3"), ("urllib3", "2.2.1")],
        )
    };
    run_case(case, Tool::PipCompile, project, URLLIB3).await;
}

// ---------------------------------------------------------------------------------------------
// One case, end to end.

/// A repository's files: (path, content).
type Files = Vec<(&'static str, String)>;

/// Makes the repository with the real tool, checks its lock holds `advisory`'s vulnerable
/// release, has the worker fix it, and checks the pushed branch: no vulnerable copy, a fixed
/// one, and the tool's own frozen check passing.
async fn run_case(
    case: &'static str,
    tool: Tool,
    project: impl FnOnce(&Developer) -> Files,
    advisory: Advisory,
) {
    run_case_checked(case, tool, project, advisory, None, |_, _, _| {}).await;
}

/// The tool's own check of a pushed branch, when the tool on PATH is not the one to run it
/// (a project that asks for another release): (developer, checkout, lock).
type FrozenCheck = Box<dyn FnOnce(&Developer, &Path, &str)>;

/// [`run_case`], with `frozen` in place of the tool's usual check when given, then `then` on
/// the world, the pushed branch and the operation (a case's own assertions).
async fn run_case_checked(
    case: &'static str,
    tool: Tool,
    project: impl FnOnce(&Developer) -> Files,
    advisory: Advisory,
    frozen: Option<FrozenCheck>,
    then: impl FnOnce(&World, &str, &Value),
) {
    let mut clock = Stopwatch::start(case);
    let dev = Developer::new();
    let files = project(&dev);
    let lock = file_text(&files, tool.lock_file());
    assert_lock_holds_the_vulnerable_release(tool, &lock, advisory);
    clock.lap("fixture made by the real tool");

    let world = World::start(WorldOptions {
        files: files.clone(),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let assessment = world
        .add_affected_fixed_in(
            advisory.package,
            advisory.ecosystem,
            advisory.id,
            advisory.installed,
            &[advisory.fixed],
        )
        .await;
    let operation = world.request(assessment).await;
    let op = world.wait_for_end(operation, OPERATION_DEADLINE).await;
    clock.lap(&format!(
        "worker ({})",
        op["status"].as_str().unwrap_or("?")
    ));

    let (branch, lock) = assert_fixed_on_branch(&world, &op, tool, advisory);
    let after = tool.copies(&lock, advisory.package);
    eprintln!(
        "real_registries: {case}: {} {} -> {after:?} by {} (changed {})",
        advisory.package,
        advisory.installed,
        op["output"]["verification"]["tool"],
        op["output"]["changed_files"]
    );
    assert_eq!(github.created().len(), 1, "one pull request: {op:#}");
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    let check = checkout(&world, &branch, &names);
    match frozen {
        Some(frozen) => frozen(&dev, check.path(), &lock),
        None => tool.frozen_check(&dev, check.path(), &lock),
    }
    clock.lap("frozen check on the branch");
    then(&world, &branch, &op);
    clock.passed = true;
    world.stop().await;
}

/// The content of `name` among `files`.
fn file_text(files: &Files, name: &str) -> String {
    files
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, text)| text.clone())
        .unwrap_or_else(|| panic!("the project has no {name}"))
}

/// Fails unless the fixture's lock resolves the advisory's vulnerable release: a case whose
/// lock has nothing to fix proves nothing.
fn assert_lock_holds_the_vulnerable_release(tool: Tool, lock: &str, advisory: Advisory) {
    let copies = tool.copies(lock, advisory.package);
    assert!(
        copies.iter().any(|v| v == advisory.installed),
        "the fixture's {} must resolve {} {} (it resolves {copies:?}):\n{lock}",
        tool.lock_file(),
        advisory.package,
        advisory.installed
    );
}

/// Asserts the operation fixed the advisory, by its own account and on the branch's lock as
/// parsed here; returns the branch and its lock.
fn assert_fixed_on_branch(
    world: &World,
    op: &Value,
    tool: Tool,
    advisory: Advisory,
) -> (String, String) {
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op:#}");
    let output = &op["output"];
    let verification = &output["verification"];
    assert_eq!(verification["vulnerable_left"], 0, "{op:#}");
    // The worker read the lock back (not only the manifests), or its count says nothing.
    assert!(
        verification["lock_files"]
            .as_array()
            .is_some_and(|files| files.iter().any(|f| f == tool.lock_file())),
        "the verification covers {}: {op:#}",
        tool.lock_file()
    );
    assert_eq!(
        output["draft_reason"],
        Value::Null,
        "a fixed lock opens a ready pull request: {op:#}"
    );
    let branch = output["branch"]
        .as_str()
        .unwrap_or_else(|| panic!("a pushed branch: {op:#}"))
        .to_owned();
    let lock = world
        .file_on_branch(&branch, tool.lock_file())
        .unwrap_or_else(|| panic!("branch {branch} exists: {op:#}"));
    let copies = tool.copies(&lock, advisory.package);
    let vulnerable: Vec<&String> = copies
        .iter()
        .filter(|v| is_below(v, advisory.fixed))
        .collect();
    assert!(
        !copies.is_empty() && vulnerable.is_empty(),
        "{} on the branch resolves {} {copies:?}: none below {} may be left, and a fixed one \
         must be there\n{lock}\n{op:#}",
        tool.lock_file(),
        advisory.package,
        advisory.fixed
    );
    (branch, lock)
}

/// The branch's `files`, written into a fresh directory (a clone's work tree, as far as the
/// tools are concerned).
fn checkout(world: &World, branch: &str, files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let text = world
            .file_on_branch(branch, file)
            .unwrap_or_else(|| panic!("{file} on {branch}"));
        write_file(dir.path(), file, &text);
    }
    dir
}

fn write_file(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Times a case's steps and prints them, and the total (also when the case fails).
struct Stopwatch {
    case: &'static str,
    started: Instant,
    lap: Instant,
    passed: bool,
}

impl Stopwatch {
    fn start(case: &'static str) -> Self {
        let now = Instant::now();
        Stopwatch {
            case,
            started: now,
            lap: now,
            passed: false,
        }
    }

    fn lap(&mut self, step: &str) {
        eprintln!(
            "real_registries: {}: {step}: {:.1} s",
            self.case,
            self.lap.elapsed().as_secs_f64()
        );
        self.lap = Instant::now();
    }
}

impl Drop for Stopwatch {
    fn drop(&mut self) {
        eprintln!(
            "real_registries: {}: {} in {:.1} s",
            self.case,
            if self.passed { "PASSED" } else { "FAILED" },
            self.started.elapsed().as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The developer's side: the real tools, outside the worker's sandbox.

/// The developer who made the repository (and who checks the pull request): the tools on
/// PATH with the user's own client configuration, so registries are whatever the clients are
/// set to, but every cache and state directory in a fresh temporary directory, so cases
/// neither share nor leave anything.
struct Developer {
    dir: tempfile::TempDir,
}

impl Developer {
    fn new() -> Self {
        let dev = Developer {
            dir: tempfile::tempdir().unwrap(),
        };
        dev.make_cargo_home();
        dev
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fresh CARGO_HOME (its registry cache is the developer's own) that keeps the user's
    /// cargo configuration: a mirror or source replacement set there still applies.
    fn make_cargo_home(&self) {
        let home = self.cache("cargo-home");
        std::fs::create_dir_all(&home).unwrap();
        let user_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
        for name in ["config.toml", "config"] {
            if let Some(source) = user_home.as_ref().map(|h| h.join(name))
                && source.is_file()
            {
                std::fs::copy(&source, home.join(name)).unwrap();
            }
        }
    }

    /// Runs `program` in `dir` and returns its stdout; fails the case, with the tool's output
    /// and what installs it, when it is missing, fails or overruns [`TOOL_DEADLINE`].
    fn run(&self, program: &str, args: &[&str], dir: &Path) -> String {
        let what = format!("`{program} {}` in {}", args.join(" "), dir.display());
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .env("npm_config_cache", self.cache("npm-cache"))
            .env("npm_config_store_dir", self.cache("pnpm-store"))
            .env("npm_config_cache_dir", self.cache("pnpm-cache"))
            .env("npm_config_update_notifier", "false")
            .env("XDG_CACHE_HOME", self.cache("xdg-cache"))
            .env("XDG_DATA_HOME", self.cache("xdg-data"))
            .env("XDG_STATE_HOME", self.cache("xdg-state"))
            .env("YARN_CACHE_FOLDER", self.cache("yarn-cache"))
            .env("YARN_ENABLE_GLOBAL_CACHE", "false")
            .env("YARN_ENABLE_TELEMETRY", "false")
            .env("CARGO_HOME", self.cache("cargo-home"))
            .env("UV_CACHE_DIR", self.cache("uv-cache"))
            .env("POETRY_CACHE_DIR", self.cache("poetry-cache"))
            .env("POETRY_VIRTUALENVS_PATH", self.cache("poetry-venvs"))
            .env("PIP_CACHE_DIR", self.cache("pip-cache"))
            // No keyring daemon here: Poetry and pip would wait for one.
            .env("POETRY_KEYRING_ENABLED", "false")
            .env("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
            // A pip setting of this machine (a local wheel directory) that pip-compile would
            // write into the compiled file as `--find-links`: not the developer's project.
            .env_remove("PIP_FIND_LINKS")
            .env("CI", "true");
        let (status, stdout, stderr) = run_with_deadline(command, self.dir.path(), &what);
        assert!(
            status.success(),
            "{what} failed ({status}):\n{stdout}\n{stderr}"
        );
        stdout
    }
}

/// Runs `command` to its end or [`TOOL_DEADLINE`] (then kills it), its output in files under
/// `scratch` (pipes could fill while we wait); returns its status, stdout and stderr.
fn run_with_deadline(
    mut command: Command,
    scratch: &Path,
    what: &str,
) -> (std::process::ExitStatus, String, String) {
    let out = tempfile::NamedTempFile::new_in(scratch).unwrap();
    let err = tempfile::NamedTempFile::new_in(scratch).unwrap();
    command
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap());
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!("{what}: cannot start it ({e}); scripts/test puts the tools on PATH (README)")
    });
    let deadline = Instant::now() + TOOL_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} ran over {TOOL_DEADLINE:?}:\n{}\n{}",
                std::fs::read_to_string(out.path()).unwrap_or_default(),
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        std::fs::read_to_string(out.path()).unwrap_or_default(),
        std::fs::read_to_string(err.path()).unwrap_or_default(),
    )
}

/// The files of `dir` named in `names`, as a repository's files.
fn read_files(dir: &Path, names: &[&'static str]) -> Files {
    names
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("{name} in {}: {e}", dir.display()));
            (*name, text)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tools: their lock file, how to read it, and their own check.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Npm,
    Pnpm,
    YarnClassic,
    YarnBerry,
    Cargo,
    Uv,
    Poetry,
    PipCompile,
}

/// Where pip-compile's output lives: in a subfolder, compiled from the repository's root.
const PIP_COMPILE_OUTPUT: &str = "requirements/dev.txt";
const PIP_COMPILE_SOURCE: &str = "requirements/dev.in";
/// The command a pip-compile header records for it.
const PIP_COMPILE_COMMAND: &str =
    "pip-compile --output-file=requirements/dev.txt requirements/dev.in";

impl Tool {
    fn lock_file(self) -> &'static str {
        match self {
            Tool::Npm => "package-lock.json",
            Tool::Pnpm => "pnpm-lock.yaml",
            Tool::YarnClassic | Tool::YarnBerry => "yarn.lock",
            Tool::Cargo => "Cargo.lock",
            Tool::Uv => "uv.lock",
            Tool::Poetry => "poetry.lock",
            Tool::PipCompile => PIP_COMPILE_OUTPUT,
        }
    }

    /// Every version of `package` the lock resolves (each copy once).
    fn copies(self, lock: &str, package: &str) -> Vec<String> {
        let mut copies = match self {
            Tool::Npm => npm_copies(lock, package),
            Tool::Pnpm => pnpm_copies(lock, package),
            Tool::YarnClassic | Tool::YarnBerry => yarn_entries(lock)
                .into_iter()
                .filter(|(patterns, _)| patterns.iter().any(|p| descriptor_name(p) == package))
                .map(|(_, version)| version)
                .collect(),
            Tool::Cargo | Tool::Uv | Tool::Poetry => toml_lock_copies(lock, package),
            Tool::PipCompile => pinned_requirements(lock)
                .into_iter()
                .filter(|(name, _)| same_python_name(name, package))
                .map(|(_, version)| version)
                .collect(),
        };
        copies.sort();
        copies.dedup();
        copies
    }

    /// The tool's own check, in `dir` (a checkout of the pushed branch), that the lock agrees
    /// with the manifests as they are; `lock` is the branch's lock.
    fn frozen_check(self, dev: &Developer, dir: &Path, lock: &str) {
        match self {
            Tool::Npm => {
                dev.run(
                    "npm",
                    &[
                        "ci",
                        "--dry-run",
                        "--ignore-scripts",
                        "--no-audit",
                        "--no-fund",
                    ],
                    dir,
                );
            }
            Tool::Pnpm => {
                dev.run(
                    "pnpm",
                    &[
                        "install",
                        "--frozen-lockfile",
                        "--lockfile-only",
                        "--ignore-scripts",
                    ],
                    dir,
                );
            }
            Tool::YarnClassic => {
                dev.run(
                    "yarn",
                    &[
                        "install",
                        "--frozen-lockfile",
                        "--ignore-scripts",
                        "--non-interactive",
                    ],
                    dir,
                );
            }
            // `yarn` on PATH (yarn 1) hands over to the release the project commits.
            Tool::YarnBerry => {
                dev.run(
                    "yarn",
                    &["install", "--immutable", "--mode=skip-build"],
                    dir,
                );
            }
            Tool::Cargo => {
                dev.run(
                    "cargo",
                    &["metadata", "--locked", "--format-version", "1"],
                    dir,
                );
            }
            Tool::Uv => {
                dev.run("uv", &["lock", "--locked"], dir);
            }
            Tool::Poetry => {
                dev.run("poetry", &["check", "--lock", "--no-interaction"], dir);
            }
            Tool::PipCompile => pip_compile_keeps(dev, dir, lock),
        }
    }
}

/// pip-compile's word on the branch: the header still records the developer's command, and
/// running that command again (which keeps every pin that still satisfies the sources) pins
/// exactly what the branch pins.
fn pip_compile_keeps(dev: &Developer, dir: &Path, compiled: &str) {
    assert!(
        compiled.contains(&format!("#    {PIP_COMPILE_COMMAND}\n")),
        "the header records the developer's command:\n{compiled}"
    );
    let recorded: Vec<&str> = PIP_COMPILE_COMMAND.split(' ').skip(1).collect();
    dev.run("pip-compile", &recorded, dir);
    let recompiled = std::fs::read_to_string(dir.join(PIP_COMPILE_OUTPUT)).unwrap();
    assert_eq!(
        pinned_requirements(&recompiled),
        pinned_requirements(compiled),
        "pip-compile run again changes the branch's pins:\n{recompiled}"
    );
}

// ---------------------------------------------------------------------------------------------
// Projects, made as their developers made them.

/// A `package.json` of the project declaring `dependencies`, with `extra` top-level fields.
fn package_json(dependencies: &Value, extra: Value) -> String {
    let mut manifest = json!({"name": "storefront-web", "version": "1.4.0", "private": true,
                              "dependencies": dependencies});
    for (key, value) in extra.as_object().into_iter().flatten() {
        manifest[key] = value.clone();
    }
    serde_json::to_string_pretty(&manifest).unwrap() + "\n"
}

/// A JavaScript project of `tool` declaring `declared` (ranges), whose lock holds each of
/// `held` (name, version) as a developer's lock does that was written when those releases
/// were the newest: the tool locks them, then keeps them under the declared ranges.
fn js_project(dev: &Developer, tool: Tool, declared: Value, held: &[(&str, &str)]) -> Files {
    let dir = tempfile::tempdir_in(dev.dir.path()).unwrap();
    let dir = dir.path();
    let names: Vec<&'static str> = match tool {
        Tool::Npm => {
            lock_held_then_relaxed(
                dev,
                dir,
                &declared,
                held,
                &[
                    "install",
                    "--package-lock-only",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                ],
                "npm",
            );
            vec!["package.json", "package-lock.json"]
        }
        Tool::Pnpm => {
            lock_held_then_relaxed(
                dev,
                dir,
                &declared,
                held,
                &["install", "--lockfile-only", "--ignore-scripts"],
                "pnpm",
            );
            vec!["package.json", "pnpm-lock.yaml"]
        }
        Tool::YarnClassic => {
            yarn_classic_lock(dev, dir, &declared, held);
            vec!["package.json", "yarn.lock"]
        }
        Tool::YarnBerry => {
            let release = yarn_berry_lock(dev, dir, &declared, held);
            vec!["package.json", ".yarnrc.yml", release, "yarn.lock"]
        }
        _ => unreachable!("{tool:?} is not a JavaScript tool"),
    };
    let files = read_files(dir, &names);
    if tool == Tool::Npm {
        let lock: Value = serde_json::from_str(&files[1].1).unwrap();
        assert_eq!(lock["lockfileVersion"], 3, "npm writes lockfile v3");
    }
    files
}

/// npm and pnpm keep a locked version the manifest still admits: lock with each held
/// release declared exactly (the transitive ones too), then lock again with the manifest as
/// declared.
fn lock_held_then_relaxed(
    dev: &Developer,
    dir: &Path,
    declared: &Value,
    held: &[(&str, &str)],
    lock: &[&str],
    program: &str,
) {
    let mut pinned = declared.clone();
    for (name, version) in held {
        pinned[*name] = json!(version);
    }
    write_file(dir, "package.json", &package_json(&pinned, json!({})));
    dev.run(program, lock, dir);
    write_file(dir, "package.json", &package_json(declared, json!({})));
    dev.run(program, lock, dir);
}

/// yarn 1 keys its entries by the requested range, so a lock written when `^0.5.5` meant
/// 0.5.5 holds `mkdirp@^0.5.5` at 0.5.5: the declared dependencies are locked pinned, their
/// entries then keyed by the declared range (as such a lock is); transitive releases are held
/// through `resolutions` (which yarn 1 applies to nested dependencies), then dropped. yarn
/// then re-saves the lock with the manifest as declared, keeping every entry.
fn yarn_classic_lock(dev: &Developer, dir: &Path, declared: &Value, held: &[(&str, &str)]) {
    let install = ["install", "--ignore-scripts", "--non-interactive"];
    let (mut pinned, mut resolutions) = (declared.clone(), json!({}));
    for (name, version) in held {
        if declared.get(name).is_some() {
            pinned[*name] = json!(version);
        } else {
            resolutions[*name] = json!(version);
        }
    }
    write_file(
        dir,
        "package.json",
        &package_json(&pinned, json!({"resolutions": resolutions})),
    );
    dev.run("yarn", &install, dir);
    let mut lock = std::fs::read_to_string(dir.join("yarn.lock")).unwrap();
    for (name, version) in held {
        if let Some(range) = declared.get(name).and_then(Value::as_str) {
            lock = rekey_yarn_classic_entry(
                &lock,
                &format!("{name}@{version}"),
                &format!("{name}@{range}"),
            );
        }
    }
    write_file(dir, "yarn.lock", &lock);
    write_file(dir, "package.json", &package_json(declared, json!({})));
    dev.run("yarn", &install, dir);
}

/// `lock` with the entry pattern `from` (in an entry's header line) replaced by `to`.
fn rekey_yarn_classic_entry(lock: &str, from: &str, to: &str) -> String {
    let mut found = false;
    let lines: Vec<String> = lock
        .lines()
        .map(|line| {
            let Some(header) = line.strip_suffix(':').filter(|_| is_entry_header(line)) else {
                return line.to_owned();
            };
            let patterns: Vec<String> = header
                .split(", ")
                .map(|p| {
                    if p.trim_matches('"') == from {
                        found = true;
                        to.to_owned()
                    } else {
                        p.to_owned()
                    }
                })
                .collect();
            format!("{}:", patterns.join(", "))
        })
        .collect();
    assert!(found, "yarn.lock has no entry {from}:\n{lock}");
    lines.join("\n") + "\n"
}

/// A yarn Berry project committing the release `scripts/test` installs (`.yarnrc.yml`
/// `yarnPath`), as Berry users do; `yarn` on PATH (yarn 1) hands over to it. Berry locks the
/// declared ranges, then `yarn set resolution` holds each descriptor of a held package at
/// its release, in order (a held parent first, so the range it asks for the next one is in
/// the lock). Returns the release's path in the project.
fn yarn_berry_lock(
    dev: &Developer,
    dir: &Path,
    declared: &Value,
    held: &[(&str, &str)],
) -> &'static str {
    let source = yarn_berry_release();
    let release = std::fs::read_to_string(&source).unwrap_or_else(|e| {
        panic!(
            "the yarn Berry release scripts/test installs ({}): {e}",
            source.display()
        )
    });
    let version = dev
        .run("node", &[source.to_str().unwrap(), "--version"], dir)
        .trim()
        .to_owned();
    let path: &'static str =
        Box::leak(format!(".yarn/releases/yarn-{version}.cjs").into_boxed_str());
    write_file(dir, path, &release);
    write_file(dir, ".yarnrc.yml", &format!("yarnPath: {path}\n"));
    write_file(dir, "package.json", &package_json(declared, json!({})));
    // An empty lock marks the project's root (Berry would look further up without one).
    write_file(dir, "yarn.lock", "");
    let update = ["install", "--mode=update-lockfile"];
    dev.run("yarn", &update, dir);
    for (name, version) in held {
        let lock = std::fs::read_to_string(dir.join("yarn.lock")).unwrap();
        let descriptors: Vec<String> = yarn_entries(&lock)
            .into_iter()
            .flat_map(|(patterns, _)| patterns)
            .filter(|p| descriptor_name(p) == *name)
            .collect();
        assert!(!descriptors.is_empty(), "yarn.lock has no {name}:\n{lock}");
        for descriptor in descriptors {
            dev.run(
                "yarn",
                &["set", "resolution", &descriptor, &format!("npm:{version}")],
                dir,
            );
        }
        dev.run("yarn", &update, dir);
    }
    path
}

/// The yarn Berry release scripts/test installs.
fn yarn_berry_release() -> PathBuf {
    std::env::var_os("REMEDIATOR_TEST_YARN_BERRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/tools-yarn-berry/node_modules/@yarnpkg/cli-dist/bin/yarn.js")
        })
}

/// A one-crate project depending on `dependencies` (Cargo.toml lines), locked by cargo, with
/// the advisory's package set back to its vulnerable release (`cargo update --precise`, as
/// a lock made before the fix would hold it).
fn cargo_project(dev: &Developer, dependencies: &str, advisory: Advisory) -> Files {
    let dir = tempfile::tempdir_in(dev.dir.path()).unwrap();
    let dir = dir.path();
    let manifest = format!(
        "[package]\nname = \"storefront-core\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\n{dependencies}"
    );
    write_file(dir, "Cargo.toml", &manifest);
    write_file(dir, "src/lib.rs", "//! The storefront's core.\n");
    dev.run("cargo", &["generate-lockfile"], dir);
    dev.run(
        "cargo",
        &[
            "update",
            "-p",
            advisory.package,
            "--precise",
            advisory.installed,
        ],
        dir,
    );
    read_files(dir, &["Cargo.toml", "src/lib.rs", "Cargo.lock"])
}

/// A Python project of `tool` requiring `requirements` (PEP 508), whose lock holds each of
/// `held` (name, version): uv and pip-compile are told to upgrade them to exactly those
/// releases; Poetry locks them required exactly, then keeps them under the relaxed
/// requirements (Poetry 2 keeps what is locked and still satisfies).
fn python_project(
    dev: &Developer,
    tool: Tool,
    requirements: &[&str],
    held: &[(&str, &str)],
) -> Files {
    let dir = tempfile::tempdir_in(dev.dir.path()).unwrap();
    let dir = dir.path();
    let pyproject = |requirements: &[String]| {
        let quoted: Vec<String> = requirements.iter().map(|r| format!("\"{r}\"")).collect();
        let mut text = format!(
            "[project]\nname = \"storefront-api\"\nversion = \"0.1.0\"\n\
             requires-python = \">=3.10\"\ndependencies = [{}]\n",
            quoted.join(", ")
        );
        if tool == Tool::Poetry {
            text.push_str("\n[tool.poetry]\npackage-mode = false\n");
        }
        text
    };
    let declared: Vec<String> = requirements.iter().map(|r| r.to_string()).collect();
    let upgrades: Vec<String> = held
        .iter()
        .flat_map(|(name, version)| ["--upgrade-package".to_owned(), format!("{name}=={version}")])
        .collect();
    let upgrades: Vec<&str> = upgrades.iter().map(String::as_str).collect();
    match tool {
        Tool::Uv => {
            write_file(dir, "pyproject.toml", &pyproject(&declared));
            dev.run("uv", &["lock"], dir);
            dev.run("uv", &[&["lock"][..], &upgrades].concat(), dir);
            read_files(dir, &["pyproject.toml", "uv.lock"])
        }
        Tool::Poetry => {
            let mut pinned: Vec<String> = held
                .iter()
                .map(|(name, version)| format!("{name}=={version}"))
                .collect();
            pinned.extend(
                declared
                    .iter()
                    .filter(|r| !held.iter().any(|(name, _)| requirement_name(r) == *name))
                    .cloned(),
            );
            write_file(dir, "pyproject.toml", &pyproject(&pinned));
            dev.run("poetry", &["lock", "--no-interaction"], dir);
            write_file(dir, "pyproject.toml", &pyproject(&declared));
            dev.run("poetry", &["lock", "--no-interaction"], dir);
            read_files(dir, &["pyproject.toml", "poetry.lock"])
        }
        Tool::PipCompile => {
            write_file(dir, PIP_COMPILE_SOURCE, &(declared.join("\n") + "\n"));
            let recorded: Vec<&str> = PIP_COMPILE_COMMAND.split(' ').skip(1).collect();
            dev.run("pip-compile", &[&recorded[..], &upgrades].concat(), dir);
            let files = read_files(dir, &[PIP_COMPILE_SOURCE, PIP_COMPILE_OUTPUT]);
            // `--upgrade-package` is not recorded: the header is the developer's command.
            assert!(
                files[1]
                    .1
                    .contains(&format!("#    {PIP_COMPILE_COMMAND}\n")),
                "{}",
                files[1].1
            );
            files
        }
        _ => unreachable!("{tool:?} is not a Python tool"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading locks.

/// Versions of `package` in a package-lock.json (v2/v3 `packages`, nested copies included).
fn npm_copies(lock: &str, package: &str) -> Vec<String> {
    let lock: Value = serde_json::from_str(lock).expect("package-lock.json is JSON");
    let at = format!("node_modules/{package}");
    lock["packages"]
        .as_object()
        .expect("a lockfile v2/v3 `packages` map")
        .iter()
        .filter(|(path, _)| *path == &at || path.ends_with(&format!("/{at}")))
        .filter_map(|(_, entry)| entry["version"].as_str().map(str::to_owned))
        .collect()
}

/// Versions of `package` in a pnpm-lock.yaml: the keys of its `packages` section
/// (`name@version`, `'@scope/name@version'`; v6's leading `/` too).
fn pnpm_copies(lock: &str, package: &str) -> Vec<String> {
    let mut in_packages = false;
    let mut copies = Vec::new();
    for line in lock.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            in_packages = line.trim_end() == "packages:";
            continue;
        }
        let Some(key) = line.strip_prefix("  ").filter(|k| !k.starts_with(' ')) else {
            continue;
        };
        if !in_packages {
            continue;
        }
        let key = key.split(": ").next().unwrap().trim_end_matches(':');
        let key = key
            .trim_matches('\'')
            .trim_matches('"')
            .trim_start_matches('/');
        if descriptor_name(key) == package {
            let version = &key[package.len() + 1..];
            copies.push(version.split('(').next().unwrap().to_owned());
        }
    }
    copies
}

/// Whether `line` heads an entry of a yarn.lock (classic or Berry).
fn is_entry_header(line: &str) -> bool {
    !line.is_empty() && !line.starts_with([' ', '#']) && line.ends_with(':')
}

/// The entries of a yarn.lock, classic (`lodash@^4.17.20:` / `version "4.17.21"`) or Berry
/// (`"lodash@npm:^4.17.20":` / `version: 4.17.21`): each one's patterns and version.
fn yarn_entries(lock: &str) -> Vec<(Vec<String>, String)> {
    let mut entries = Vec::new();
    let mut patterns: Option<Vec<String>> = None;
    for line in lock.lines() {
        if is_entry_header(line) {
            let header = line.trim_end_matches(':').trim_matches('"');
            patterns = Some(
                header
                    .split(", ")
                    .map(|p| p.trim_matches('"').to_owned())
                    .collect(),
            );
        } else if let Some(version) = line.strip_prefix("  version")
            && let Some(patterns) = patterns.take()
        {
            let version = version.trim_start_matches(':').trim().trim_matches('"');
            entries.push((patterns, version.to_owned()));
        }
    }
    entries
}

/// The package name of a descriptor (`lodash@^4`, `@scope/x@npm:1.0.0`, `minimist@1.2.5`).
fn descriptor_name(descriptor: &str) -> &str {
    match descriptor.get(1..).and_then(|rest| rest.find('@')) {
        Some(at) => &descriptor[..at + 1],
        None => descriptor,
    }
}

/// Versions of `package` in a TOML lock with `[[package]]` name/version tables: Cargo.lock,
/// uv.lock, poetry.lock.
fn toml_lock_copies(lock: &str, package: &str) -> Vec<String> {
    let lock: toml_edit::DocumentMut = lock.parse().expect("the lock is TOML");
    let Some(packages) = lock.get("package").and_then(|p| p.as_array_of_tables()) else {
        return Vec::new();
    };
    packages
        .iter()
        .filter(|p| {
            p.get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| same_python_name(n, package))
        })
        .filter_map(|p| p.get("version").and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

/// The project name a PEP 508 requirement names (`requests>=2.31.0` -> `requests`).
fn requirement_name(requirement: &str) -> &str {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or(requirement.len());
    &requirement[..end]
}

/// Names equal under PEP 503 normalisation (which leaves crate and npm names as they are).
fn same_python_name(a: &str, b: &str) -> bool {
    let normal = |s: &str| s.to_ascii_lowercase().replace(['_', '.'], "-");
    normal(a) == normal(b)
}

/// The `name==version` pins of a compiled requirements file.
fn pinned_requirements(compiled: &str) -> Vec<(String, String)> {
    let mut pins: Vec<(String, String)> = compiled
        .lines()
        .filter(|line| !line.starts_with([' ', '#', '-']))
        .filter_map(|line| {
            let requirement = line.split([';', ' ', '\\']).next().unwrap();
            let (name, version) = requirement.split_once("==")?;
            let name = name.split('[').next().unwrap();
            Some((name.to_ascii_lowercase(), version.to_owned()))
        })
        .collect();
    pins.sort();
    pins
}

/// Whether `version` is below `fixed`, comparing the leading numeric components (padded with
/// zeros): every version this suite meets is plain `x.y.z`.
fn is_below(version: &str, fixed: &str) -> bool {
    let numbers = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .map_while(|part| part.parse().ok())
            .collect()
    };
    let (a, b) = (numbers(version), numbers(fixed));
    let len = a.len().max(b.len());
    let pad = |v: Vec<u64>| v.into_iter().chain(std::iter::repeat(0)).take(len);
    pad(a).lt(pad(b))
}

#[test]
fn the_lock_readers_understand_each_format() {
    let pnpm = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      lodash:\n        specifier: ^4.17.20\n        version: 4.17.20\n\npackages:\n\n  '@types/node@20.1.0':\n    resolution: {integrity: x}\n\n  lodash@4.17.20:\n    resolution: {integrity: y}\n\nsnapshots:\n\n  lodash@4.17.20: {}\n";
    assert_eq!(Tool::Pnpm.copies(pnpm, "lodash"), ["4.17.20"]);
    assert_eq!(Tool::Pnpm.copies(pnpm, "@types/node"), ["20.1.0"]);
    let classic = "# yarn lockfile v1\n\n\nminimist@1.2.5, minimist@^1.2.5:\n  version \"1.2.5\"\n  resolved \"x\"\n\n\"@babel/core@^7.0.0\":\n  version \"7.1.0\"\n";
    assert_eq!(Tool::YarnClassic.copies(classic, "minimist"), ["1.2.5"]);
    assert_eq!(Tool::YarnClassic.copies(classic, "@babel/core"), ["7.1.0"]);
    assert_eq!(
        rekey_yarn_classic_entry(classic, "minimist@1.2.5", "minimist@^1.2.4")
            .lines()
            .nth(3),
        Some("minimist@^1.2.4, minimist@^1.2.5:")
    );
    let berry = "__metadata:\n  version: 10\n  cacheKey: 10c0\n\n\"minimist@npm:^1.2.5, minimist@npm:^1.2.6\":\n  version: 1.2.8\n  resolution: \"minimist@npm:1.2.8\"\n";
    assert_eq!(Tool::YarnBerry.copies(berry, "minimist"), ["1.2.8"]);
    let compiled = "#\n#    pip-compile --output-file=requirements/dev.txt requirements/dev.in\n#\nrequests==2.31.0\n    # via -r requirements/dev.in\nurllib3[socks]==2.2.1 ; python_version >= \"3.10\"\n";
    assert_eq!(Tool::PipCompile.copies(compiled, "urllib3"), ["2.2.1"]);
    let cargo = "version = 4\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\n";
    assert_eq!(Tool::Cargo.copies(cargo, "smallvec"), ["1.6.0"]);
    assert!(is_below("0.1.7", "0.1.10") && !is_below("0.1.12", "0.1.10"));
    assert!(is_below("2.31.0", "2.32") && !is_below("2.32", "2.32.0"));
    assert!(!is_below("4.18.1", "4.17.21") && is_below("1.2.5", "1.2.6"));
}
