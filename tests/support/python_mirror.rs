//! An offline Python mirror for the test-step tests: `pyfmt`, a package whose fixed release
//! (1.0.1) dropped a function, as wheels beside pytest's from PyPI, and a uv lock made from it.

use std::path::Path;

/// `pyfmt` 1.0.0 (`pad` and `fmt`) and 1.0.1 (the fix, without `fmt`, whose METADATA
/// description says so) as wheels, beside pytest and its dependencies from PyPI: the directory
/// the worker's uv resolves from (offline).
pub fn pyfmt(dir: &Path) {
    let script = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1]
code = {"1.0.0": "def pad(s, n):\n    return str(s).ljust(n)\n\ndef fmt(n):\n    return str(n)\n",
        "1.0.1": "def pad(s, n):\n    return str(s).ljust(n)\n"}
notes = {"1.0.0": "", "1.0.1": "\n# pyfmt\n\n## 1.0.1\n\n- fmt() was removed: use str(n).\n\n## 1.0.0\n\n- First release.\n"}
for version, init in code.items():
    dist = f"pyfmt-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: pyfmt\nVersion: {version}\nDescription-Content-Type: text/markdown\n" + notes[version]
    files = {"pyfmt/__init__.py": init, f"{dist}/METADATA": meta,
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b'=').decode()},{len(c)}" for p, c in files.items()]
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(f"{out}/pyfmt-{version}-py3-none-any.whl", "w") as z:
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
    download_wheels(dir, &["pytest"]);
}

/// Downloads the wheels of `packages` and their dependencies from PyPI into `dir`, with the
/// pip `scripts/test` installs.
pub fn download_wheels(dir: &Path, packages: &[&str]) {
    let pip = format!("{}/target/tools-venv/bin/pip", env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(&pip)
        .args(["download", "--quiet", "--only-binary=:all:", "--dest"])
        .arg(dir)
        .args(packages)
        .output()
        .unwrap_or_else(|e| panic!("{pip} (scripts/test installs it): {e}"));
    assert!(
        output.status.success(),
        "{packages:?} from PyPI: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `uv lock` of the project in `project` from `mirror` alone; the uv used and the lock.
pub fn uv_lock(project: &Path, mirror: &Path) -> (String, String) {
    let uv = format!("{}/target/tools-venv/bin/uv", env!("CARGO_MANIFEST_DIR"));
    let uv = std::env::var("REMEDIATOR_TEST_UV").unwrap_or(uv);
    let locked = std::process::Command::new(&uv)
        .args(["lock", "--no-index", "--find-links"])
        .arg(mirror)
        .current_dir(project)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", project.join(".home"))
        .env("UV_CACHE_DIR", project.join(".uv-cache"))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .output()
        .unwrap();
    assert!(
        locked.status.success(),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    let lock = std::fs::read_to_string(project.join("uv.lock")).unwrap();
    (uv, lock)
}
