//! Which files of a repository a job writes to disk. The patcher and the LLM context read the
//! repository from the object database, and the commit is built there, so the clone's directory
//! needs only what the lock tools read: manifests, lock files, the tools' own configuration,
//! and the few sources a tool insists on (Cargo's target roots, Go's packages). A job then pays
//! for the handful of files the fix touches, not for the whole work tree.
//!
//! Where a tool may read any file of the project (a Python build backend asked for the
//! project's metadata), [`whole_tree_reason`] says so and the whole tree is written.

/// Files any lock tool here may read, by exact name, in any directory.
const NAMES: &[&str] = &[
    // npm, pnpm, yarn
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "pnpm-workspace.yaml",
    ".pnpmfile.cjs",
    "yarn.lock",
    ".yarnrc",
    ".yarnrc.yml",
    ".npmrc",
    // Cargo
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain",
    "rust-toolchain.toml",
    // Go
    "go.mod",
    "go.sum",
    "go.work",
    "go.work.sum",
    // Python
    "pyproject.toml",
    "poetry.lock",
    "poetry.toml",
    "uv.lock",
    "uv.toml",
    "Pipfile",
    "Pipfile.lock",
    "setup.cfg",
    "setup.py",
    ".python-version",
    "pip.conf",
    // Maven (the bump edits it; no lock tool runs)
    "pom.xml",
];

/// Whether `name` (a file name) is one a lock tool reads: a manifest, lock or tool setting.
pub fn is_tool_file(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Whether the file at repository-relative `path` is written to disk for the lock tools.
pub fn needed_on_disk(path: &str) -> bool {
    let mut components = path.rsplit('/');
    let Some(name) = components.next() else {
        return false;
    };
    let parent = components.next();
    let grandparent = components.next();
    if NAMES.contains(&name) {
        return true;
    }
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        // Requirements and pip-tools inputs (`requirements/base.in`, `constraints.txt`), and
        // patches that pnpm's `patchedDependencies` and yarn's `patch:` protocol hash.
        "txt" | "in" | "patch" => return true,
        // `go get` loads the main module's packages to keep go.sum complete for them.
        "go" => return true,
        _ => {}
    }
    // Cargo refuses a manifest without a target, and finds targets by these paths.
    if name == "lib.rs" || name == "main.rs" {
        if parent == Some("src") {
            return true;
        }
        if parent.is_some() && grandparent == Some("bin") {
            return true;
        }
    }
    if extension == "rs" && parent == Some("bin") && grandparent == Some("src") {
        return true;
    }
    // Cargo's configuration, and yarn Berry's release, plugins and patches.
    if path.starts_with(".cargo/") || path.contains("/.cargo/") {
        return true;
    }
    [".yarn/releases/", ".yarn/plugins/", ".yarn/patches/"]
        .iter()
        .any(|dir| path.starts_with(dir) || path.contains(&format!("/{dir}")))
}

/// Why the whole tree must be on disk, or `None` when [`needed_on_disk`] covers what the tools
/// read. `paths` are the repository's files; `read` gives the text of one of them.
pub fn whole_tree_reason<'a>(
    paths: impl IntoIterator<Item = &'a str>,
    read: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    for path in paths {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name == "setup.py" {
            return Some(format!(
                "{path}: a Python build backend reads the project's sources for its metadata"
            ));
        }
        if name == "pyproject.toml"
            && read(path).is_some_and(|text| declares_dynamic_metadata(&text))
        {
            return Some(format!(
                "{path} declares dynamic metadata, which its build backend computes from the \
                 sources"
            ));
        }
        let requirements = name.ends_with(".in") || name.ends_with(".txt");
        if requirements && read(path).is_some_and(|text| installs_local_project(&text)) {
            return Some(format!(
                "{path} installs a local project, which pip builds from its sources"
            ));
        }
    }
    None
}

/// Whether uv or pip-compile would build the project to learn its metadata: a `[project]`
/// table with a `dynamic` key, or none at all outside Poetry (setuptools reading `setup.cfg`
/// and the package directories).
fn declares_dynamic_metadata(pyproject: &str) -> bool {
    let Ok(doc) = pyproject.parse::<toml_edit::DocumentMut>() else {
        // A manifest we cannot read: the tool may need anything.
        return true;
    };
    let poetry = doc.get("tool").and_then(|t| t.get("poetry")).is_some();
    match doc.get("project") {
        None => !poetry && doc.contains_key("build-system"),
        Some(project) => project
            .get("dynamic")
            .and_then(|d| d.as_array())
            .is_some_and(|d| !d.is_empty()),
    }
}

/// A requirements line naming a local directory (`-e .`, `./lib`, `file:`).
fn installs_local_project(text: &str) -> bool {
    text.lines().map(str::trim).any(|line| {
        let spec = line
            .strip_prefix("-e ")
            .or_else(|| line.strip_prefix("--editable "))
            .or_else(|| line.strip_prefix("--editable="))
            .map_or(line, str::trim);
        spec.starts_with('.') || spec.starts_with('/') || spec.starts_with("file:")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_locks_and_tool_configuration_are_written() {
        for path in [
            "package.json",
            "packages/web/package.json",
            "package-lock.json",
            "pnpm-workspace.yaml",
            ".yarn/releases/yarn-4.1.0.cjs",
            "patches/lodash@4.17.20.patch",
            "crates/core/Cargo.toml",
            "crates/core/src/lib.rs",
            "src/main.rs",
            "src/bin/tool.rs",
            "src/bin/tool/main.rs",
            ".cargo/config.toml",
            "go.sum",
            "cmd/server/main.go",
            "requirements/base.in",
            "requirements-dev.txt",
            "poetry.lock",
            "pom.xml",
        ] {
            assert!(needed_on_disk(path), "{path} is not written");
        }
    }

    #[test]
    fn sources_and_assets_stay_in_the_object_database() {
        for path in [
            "src/index.js",
            "packages/web/src/app.tsx",
            "crates/core/src/parse.rs",
            "README.md",
            "assets/logo.png",
            "app/models.py",
            "lib.rs",
        ] {
            assert!(!needed_on_disk(path), "{path} is written");
        }
    }

    #[test]
    fn a_build_backend_that_reads_sources_needs_the_whole_tree() {
        let read = |path: &str| {
            Some(
                match path {
                    "dynamic/pyproject.toml" => {
                        "[project]\nname = \"a\"\ndynamic = [\"version\"]\n"
                    }
                    "static/pyproject.toml" => "[project]\nname = \"a\"\nversion = \"1.0\"\n",
                    "setuptools/pyproject.toml" => "[build-system]\nrequires = [\"setuptools\"]\n",
                    "poetry/pyproject.toml" => "[tool.poetry]\nname = \"a\"\n[build-system]\n",
                    "editable/requirements.in" => "-e .\nrequests\n",
                    "plain/requirements.in" => "requests>=2\n# ./not-a-path\n",
                    _ => "",
                }
                .to_owned(),
            )
        };
        assert!(whole_tree_reason(["dynamic/pyproject.toml"], read).is_some());
        assert!(whole_tree_reason(["setup.py"], read).is_some());
        assert!(whole_tree_reason(["setuptools/pyproject.toml"], read).is_some());
        assert!(whole_tree_reason(["editable/requirements.in"], read).is_some());
        assert_eq!(
            whole_tree_reason(
                [
                    "static/pyproject.toml",
                    "poetry/pyproject.toml",
                    "plain/requirements.in",
                    "package.json"
                ],
                read
            ),
            None
        );
    }
}
