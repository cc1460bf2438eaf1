//! Who holds a vulnerable transitive copy in place: the packages of a lock file that depend
//! on it, with what they ask for where the lock records it. A job that cannot move the copy
//! names them, so that whoever reads the failure knows which package must be upgraded first
//! (and to what: a release whose requirement admits the fixed version).

use toml_edit::{DocumentMut, Item, Value};

use super::overrides::{self, Manager};

/// The dependents of `package` in the lock file `lock_name` (a file name) with text `text`,
/// as `parent 1.0.0 asks for >=1,<2` or `parent 1.0.0` when the lock keeps no requirement.
pub fn dependents(lock_name: &str, text: &str, package: &str) -> Vec<String> {
    match lock_name {
        "package-lock.json" | "npm-shrinkwrap.json" => {
            overrides::dependents(Manager::Npm, text, package)
        }
        "pnpm-lock.yaml" => overrides::dependents(Manager::Pnpm, text, package),
        "yarn.lock" => overrides::dependents(Manager::Yarn, text, package),
        "Cargo.lock" | "uv.lock" | "poetry.lock" => toml_dependents(text, package),
        _ => Vec::new(),
    }
}

/// A package of a TOML lock that depends on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    pub name: String,
    pub version: String,
    /// What it asks for, where the lock records it (Poetry does; Cargo and uv do not).
    pub asks: Option<String>,
}

/// The dependents of `package` in a TOML lock, as `parent 1.0.0 asks for >=1,<2`.
fn toml_dependents(text: &str, package: &str) -> Vec<String> {
    toml_holders(text, package)
        .into_iter()
        .map(|d| match d.asks {
            Some(range) => format!("{} {} asks for {range}", d.name, d.version),
            None => format!("{} {}", d.name, d.version),
        })
        .collect()
}

/// `[[package]]` tables with a `dependencies` list naming the package: Cargo (`"name"` or
/// `"name version (source)"` strings), uv (`{ name = "..." }` tables) and Poetry (a
/// `[package.dependencies]` table of requirements).
pub fn toml_holders(text: &str, package: &str) -> Vec<Dependent> {
    let Ok(document) = text.parse::<DocumentMut>() else {
        return Vec::new();
    };
    let Some(packages) = document.get("package").and_then(Item::as_array_of_tables) else {
        return Vec::new();
    };
    let same = |name: &str| normalized(name) == normalized(package);
    let mut found = Vec::new();
    for table in packages.iter() {
        let (Some(name), Some(version)) = (
            table.get("name").and_then(Item::as_str),
            table.get("version").and_then(Item::as_str),
        ) else {
            continue;
        };
        let asks = match table.get("dependencies") {
            Some(Item::Value(Value::Array(list))) => list
                .iter()
                .find(|entry| match entry {
                    Value::String(spec) => {
                        spec.value().split_whitespace().next().is_some_and(&same)
                    }
                    Value::InlineTable(entry) => {
                        entry.get("name").and_then(Value::as_str).is_some_and(&same)
                    }
                    _ => false,
                })
                .map(|_| None),
            Some(Item::Table(requirements)) => requirements
                .iter()
                .find(|(key, _)| same(key))
                .map(|(_, requirement)| poetry_requirement(requirement)),
            _ => None,
        };
        if let Some(asks) = asks {
            found.push(Dependent {
                name: name.to_owned(),
                version: version.to_owned(),
                asks,
            });
        }
    }
    found
}

/// Poetry writes `name = ">=1,<2"` or `name = {version = ">=1", optional = true}`.
fn poetry_requirement(item: &Item) -> Option<String> {
    match item {
        Item::Value(Value::String(range)) => Some(range.value().to_owned()),
        Item::Value(Value::InlineTable(table)) => table
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// Python names compare case-insensitively with `-`, `_` and `.` alike (PEP 503); Cargo's
/// and npm's names are already normalised, so this changes nothing for them.
fn normalized(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cargo names a dependency by name, or by name and version when the lock holds two.
    const CARGO: &str = r#"version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["parentcrate", "serde 1.0.0"]

[[package]]
name = "parentcrate"
version = "1.0.0"
source = "registry+https://registry.invalid/index"
dependencies = [
 "vulncrate 0.9.0 (registry+https://registry.invalid/index)",
]

[[package]]
name = "othercrate"
version = "2.0.0"
dependencies = ["vulncrate"]

[[package]]
name = "vulncrate"
version = "0.9.0"
"#;
    /// Poetry records what each dependent asks for.
    const POETRY: &str = r#"[[package]]
name = "requests"
version = "2.31.0"

[package.dependencies]
certifi = ">=2017.4.17"
Idna = {version = ">=2.5,<4", optional = true}

[[package]]
name = "idna"
version = "3.6"
"#;
    const UV: &str = r#"version = 1

[[package]]
name = "requests"
version = "2.31.0"
source = { registry = "https://registry.invalid/simple" }
dependencies = [
    { name = "certifi" },
    { name = "idna" },
]

[[package]]
name = "idna"
version = "3.6"
"#;

    #[test]
    fn each_lock_names_the_packages_that_depend_on_it() {
        // (lock file name, its text, the package, its dependents)
        let cases: [(&str, &str, &str, &[&str]); 6] = [
            (
                "Cargo.lock",
                CARGO,
                "vulncrate",
                &["parentcrate 1.0.0", "othercrate 2.0.0"],
            ),
            ("Cargo.lock", CARGO, "nothing", &[]),
            (
                "poetry.lock",
                POETRY,
                "idna",
                &["requests 2.31.0 asks for >=2.5,<4"],
            ),
            ("uv.lock", UV, "IDNA", &["requests 2.31.0"]),
            // An unreadable lock, and a file that is no lock, name no one.
            ("Cargo.lock", "not [toml", "x", &[]),
            ("go.mod", "module x", "x", &[]),
        ];
        for (name, text, package, expected) in cases {
            assert_eq!(
                dependents(name, text, package),
                expected,
                "{package} in {name}"
            );
        }
    }
}
