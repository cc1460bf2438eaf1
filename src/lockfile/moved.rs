//! What else a lock-only update moved. Some tools move a transitive package's dependents when
//! its fixed release needs it and the project's declared ranges allow it (uv and Poetry
//! re-resolve the parents, `go get` raises the requirements of the new release): the job then
//! says so instead of calling the change "the package and nothing else". Read for the locks
//! whose entries name their packages' versions (Cargo, uv, Poetry, npm, `go.mod`); for the
//! others the tools move the package alone.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use toml_edit::{DocumentMut, Item};

use crate::patch::bump::pep503_name;

/// The packages other than `package` whose versions differ between `before` and `after` of
/// the lock file `lock_name` (a file name): `toppkg 1.0.0 -> 1.1.0`, `newdep 2.0.0 added`,
/// `olddep 1.0.0 removed`. Empty for a lock this cannot read.
pub fn others_moved(lock_name: &str, before: &str, after: &str, package: &str) -> Vec<String> {
    let (Some(before), Some(after)) = (versions(lock_name, before), versions(lock_name, after))
    else {
        return Vec::new();
    };
    let package = pep503_name(package);
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let joined = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    let mut moved = Vec::new();
    for name in names {
        if pep503_name(name) == package {
            continue;
        }
        match (before.get(name), after.get(name)) {
            (Some(old), Some(new)) if old != new => {
                moved.push(format!("{name} {} -> {}", joined(old), joined(new)));
            }
            (None, Some(new)) => moved.push(format!("{name} {} added", joined(new))),
            (Some(old), None) => moved.push(format!("{name} {} removed", joined(old))),
            _ => {}
        }
    }
    moved
}

/// Each package of the lock with the versions it resolves; `None` when the lock is not of a
/// kind read here, or does not parse.
fn versions(lock_name: &str, text: &str) -> Option<BTreeMap<String, BTreeSet<String>>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |name: &str, version: &str| {
        found
            .entry(name.to_owned())
            .or_default()
            .insert(version.to_owned());
    };
    match lock_name {
        "Cargo.lock" | "uv.lock" | "poetry.lock" => {
            let document = text.parse::<DocumentMut>().ok()?;
            let packages = document.get("package")?.as_array_of_tables()?;
            for table in packages.iter() {
                if let (Some(name), Some(version)) = (
                    table.get("name").and_then(Item::as_str),
                    table.get("version").and_then(Item::as_str),
                ) {
                    add(name, version);
                }
            }
        }
        "package-lock.json" | "npm-shrinkwrap.json" => {
            let json: Value = serde_json::from_str(text).ok()?;
            for (path, entry) in json.get("packages")?.as_object()? {
                let name = path.rsplit_once("node_modules/").map(|(_, name)| name);
                let version = entry.get("version").and_then(Value::as_str);
                if let (Some(name), Some(version)) = (name, version) {
                    add(name, version);
                }
            }
        }
        "go.mod" => {
            let mut in_block = false;
            for line in text.lines() {
                let line = line.split("//").next().unwrap_or_default().trim();
                let entry = match (in_block, line) {
                    (false, "require (") => {
                        in_block = true;
                        continue;
                    }
                    (true, ")") => {
                        in_block = false;
                        continue;
                    }
                    (true, entry) => entry,
                    (false, line) => match line.strip_prefix("require ") {
                        Some(entry) => entry,
                        None => continue,
                    },
                };
                if let Some((module, version)) = entry.split_once(' ') {
                    add(module.trim(), version.trim());
                }
            }
        }
        _ => return None,
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_uv_moved_are_named_and_the_package_is_not() {
        let before = "version = 1\n\n[[package]]\nname = \"toppkg\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"midpkg\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"VulnPkg\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"same\"\nversion = \"3.0.0\"\n";
        let after = "version = 1\n\n[[package]]\nname = \"toppkg\"\nversion = \"1.1.0\"\n\n[[package]]\nname = \"VulnPkg\"\nversion = \"1.0.1\"\n\n[[package]]\nname = \"same\"\nversion = \"3.0.0\"\n\n[[package]]\nname = \"newdep\"\nversion = \"2.0.0\"\n";
        assert_eq!(
            others_moved("uv.lock", before, after, "vulnpkg"),
            [
                "midpkg 1.0.0 removed",
                "newdep 2.0.0 added",
                "toppkg 1.0.0 -> 1.1.0"
            ]
        );
        assert!(others_moved("uv.lock", before, before, "vulnpkg").is_empty());
    }

    #[test]
    fn npm_copies_and_go_requirements_are_read() {
        let before = r#"{"packages": {"": {}, "node_modules/a": {"version": "1.0.0"},
            "node_modules/a/node_modules/lodash": {"version": "4.17.20"},
            "node_modules/lodash": {"version": "4.17.20"}}}"#;
        let after = r#"{"packages": {"": {}, "node_modules/a": {"version": "1.0.0"},
            "node_modules/lodash": {"version": "4.17.21"}}}"#;
        assert!(others_moved("package-lock.json", before, after, "lodash").is_empty());
        let go_before = "module x\n\ngo 1.22\n\nrequire (\n\tgithub.com/a/b v1.0.0 // indirect\n\tgolang.org/x/net v0.1.0\n)\n";
        let go_after = "module x\n\ngo 1.22\n\nrequire (\n\tgithub.com/a/b v1.0.1 // indirect\n\tgolang.org/x/net v0.2.0\n)\n";
        assert_eq!(
            others_moved("go.mod", go_before, go_after, "github.com/a/b"),
            ["golang.org/x/net v0.1.0 -> v0.2.0"]
        );
        assert!(others_moved("yarn.lock", "x", "y", "lodash").is_empty());
    }
}
