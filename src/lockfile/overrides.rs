//! The last resort for a transitive package of the npm ecosystem that its dependents pin below
//! the fix: an entry that makes the project's package manager resolve the fixed version for
//! every dependent, written where that manager reads it:
//!
//! - npm: `overrides` in the root `package.json`;
//! - pnpm: `overrides` in `pnpm-workspace.yaml` when the project has one (pnpm 10 reads it
//!   there, and pnpm 11 reads settings nowhere else), else `pnpm.overrides` in `package.json`
//!   (pnpm 10 reads it; no new file is created);
//! - yarn 1 and yarn Berry: `resolutions` in the root `package.json`.
//!
//! It changes what versions the dependents were tested with, so the pull request is a draft
//! that says which dependents asked for what. `lockfiles.overrides = false` turns it off (the
//! job then fails, naming the dependents). An existing section (including one the manager
//! would read instead of ours, such as `resolutions` in a pnpm project) is never merged into:
//! its entries are the maintainers' own decisions, so the job fails and says where it is.
//! Edits are textual, so the rest of each file keeps its order and formatting (a reformatted
//! manifest would be a noisy diff).

use std::path::Path;

use serde_json::Value;

/// The package manager whose lock covers a root manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Npm,
    Pnpm,
    Yarn,
}

impl Manager {
    /// The manager of the lock beside `manifest` (a `package.json`), and that lock's path.
    pub fn beside(root: &Path, manifest: &str) -> Option<(Manager, String)> {
        let dir = super::parent_dir(manifest);
        [
            ("package-lock.json", Manager::Npm),
            ("npm-shrinkwrap.json", Manager::Npm),
            (super::pnpm::LOCK_FILE, Manager::Pnpm),
            (super::yarn::LOCK_FILE, Manager::Yarn),
        ]
        .into_iter()
        .map(|(name, manager)| (manager, super::join(dir, name)))
        .find(|(_, lock)| root.join(lock).is_file())
    }

    /// What the draft calls the entry.
    pub fn entry_name(self) -> &'static str {
        match self {
            Manager::Npm => "an npm `overrides` entry",
            Manager::Pnpm => "a pnpm `overrides` entry",
            Manager::Yarn => "a yarn `resolutions` entry",
        }
    }
}

/// One file the override changes: (repository-relative path, new content).
pub type Edit = (String, String);

/// The edit that forces `package` to `version` for the project of the root `manifest`
/// (a `package.json`, read from `root`), in the file its `manager` reads.
pub fn edit(
    root: &Path,
    manifest: &str,
    manager: Manager,
    package: &str,
    version: &str,
) -> Result<Edit, String> {
    let read = |path: &str| {
        crate::lockfile::repo_file::read(root, path).map_err(|e| format!("reading {path}: {e}"))
    };
    let text = read(manifest)?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{manifest} is not JSON: {e}"))?;
    let in_manifest = |path: &[&str]| -> Result<Edit, String> {
        add_entry(&text, path, package, version)
            .map(|updated| (manifest.to_owned(), updated))
            .map_err(|why| format!("{manifest}: {why}"))
    };
    match manager {
        Manager::Npm => in_manifest(&["overrides"]),
        Manager::Yarn => in_manifest(&["resolutions"]),
        Manager::Pnpm => {
            // pnpm takes `resolutions` as its overrides when `pnpm.overrides` is absent: a
            // new `pnpm.overrides` would silently drop them.
            for existing in [&["pnpm", "overrides"][..], &["resolutions"]] {
                if lookup(&json, existing).is_some() {
                    return Err(format!("{manifest}: {}", already(&existing.join("."))));
                }
            }
            let workspace = super::join(super::parent_dir(manifest), "pnpm-workspace.yaml");
            if root.join(&workspace).is_file() {
                let yaml = read(&workspace)?;
                add_yaml_entry(&yaml, "overrides", package, version)
                    .map(|updated| (workspace.clone(), updated))
                    .map_err(|why| format!("{workspace}: {why}"))
            } else {
                in_manifest(&["pnpm", "overrides"])
            }
        }
    }
}

/// Why an existing section is refused, and what the maintainers can do.
fn already(section: &str) -> String {
    format!(
        "there is already a `{section}` section; the worker does not merge into it (add the \
         entry there by hand, or remove the section)"
    )
}

fn lookup<'a>(json: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(json, |value, key| value.get(key))
}

/// `text` (a JSON object) with `"key": "value"` added in the object at `path` (`["pnpm",
/// "overrides"]`), creating the objects of `path` that are missing. Refuses when the object at
/// `path` already exists (never merged into) or something on the way is not an object.
pub fn add_entry(text: &str, path: &[&str], key: &str, value: &str) -> Result<String, String> {
    let parsed: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if !parsed.is_object() {
        return Err("not a JSON object".to_owned());
    }
    // The deepest object of `path` that exists gets the rest of it.
    let mut depth = 0;
    let mut at = &parsed;
    while depth < path.len() {
        match at.get(path[depth]) {
            Some(next) if next.is_object() => {
                at = next;
                depth += 1;
            }
            Some(_) => {
                return Err(format!("`{}` is not an object", path[..=depth].join(".")));
            }
            None => break,
        }
    }
    if depth == path.len() {
        return Err(already(&path.join(".")));
    }
    let (open, close) = object_span(text, &path[..depth])
        .ok_or_else(|| "cannot find the object to add to".to_owned())?;
    let unit = indent_unit(text);
    let line_start = text[..close].rfind('\n').map_or(0, |at| at + 1);
    let base: String = text[line_start..close]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    // The missing objects, innermost holding the entry, each one level deeper.
    let mut nested = format!("{}: {}", quoted(key), quoted(value));
    for (level, name) in path[depth..].iter().enumerate().rev() {
        let inner = format!("{base}{}", unit.repeat(level + 2));
        let outer = format!("{base}{}", unit.repeat(level + 1));
        nested = format!("{}: {{\n{inner}{nested}\n{outer}}}", quoted(name));
    }
    let body = text[..close].trim_end();
    let comma = if body.len() == open + 1 { "" } else { "," };
    Ok(format!(
        "{body}{comma}\n{base}{unit}{nested}\n{base}{}",
        &text[close..]
    ))
}

fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The file's indentation step: the first indented line's, or two spaces.
fn indent_unit(text: &str) -> &str {
    text.lines()
        .map(|line| &line[..line.len() - line.trim_start().len()])
        .find(|indent| !indent.is_empty())
        .unwrap_or("  ")
}

/// The byte offsets of the `{` and `}` of the object at `path` (empty: the top level) in a
/// JSON text, found by a scan that skips strings, so formatting is never rewritten.
fn object_span(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    for key in path {
        at = member_value(text, at, key)?;
    }
    (bytes.get(at) == Some(&b'{')).then_some(())?;
    Some((at, value_end(bytes, at)? - 1))
}

/// Where the value of member `key` of the object at `open` starts.
fn member_value(text: &str, open: usize, key: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (bytes.get(open) == Some(&b'{')).then_some(())?;
    let mut at = skip_space(bytes, open + 1);
    while bytes.get(at) == Some(&b'"') {
        let key_end = value_end(bytes, at)?;
        let name: String = serde_json::from_str(&text[at..key_end]).ok()?;
        at = skip_space(bytes, key_end);
        (bytes.get(at) == Some(&b':')).then_some(())?;
        let value = skip_space(bytes, at + 1);
        if name == *key {
            return Some(value);
        }
        at = skip_space(bytes, value_end(bytes, value)?);
        if bytes.get(at) == Some(&b',') {
            at = skip_space(bytes, at + 1);
        }
    }
    None
}

/// The offset just past the JSON value (string, object, array or scalar) starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, byte) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    in_string = false;
                    if depth == 0 {
                        return Some(offset + 1);
                    }
                }
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(offset + 1);
                }
            }
            b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => return Some(offset),
            _ => {}
        }
    }
    (depth == 0 && !in_string).then_some(bytes.len())
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// A YAML settings file (`pnpm-workspace.yaml`) with a top-level `section:` mapping holding
/// `"key": "value"` appended. Refuses when the section is already there, or the file is not a
/// plain block mapping that can be appended to (a flow mapping, several documents).
pub fn add_yaml_entry(text: &str, section: &str, key: &str, value: &str) -> Result<String, String> {
    let mut seen_key = false;
    let top_level = text
        .lines()
        .filter(|line| !line.starts_with([' ', '\t', '#']) && !line.trim().is_empty());
    for line in top_level {
        let marker = line.trim_end();
        // One leading `---` starts the only document; any later marker starts another.
        if marker == "---" && !seen_key {
            continue;
        }
        seen_key = true;
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if name == section {
            return Err(already(section));
        }
        if line.starts_with(['{', '[']) || marker == "---" || marker == "..." {
            return Err(
                "not a plain YAML mapping the worker can append to (flow style or several \
                 documents)"
                    .to_owned(),
            );
        }
    }
    let unit = text
        .lines()
        .map(|line| &line[..line.len() - line.trim_start_matches(' ').len()])
        .find(|indent| !indent.is_empty())
        .unwrap_or("  ");
    let mut updated = text.to_owned();
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    // Double-quoted YAML scalars are JSON strings: `@scope/pkg` needs the quotes.
    updated.push_str(&format!(
        "{section}:\n{unit}{}: {}\n",
        quoted(key),
        quoted(value)
    ));
    Ok(updated)
}

/// Who asks for the package in a lock of `manager`, for the draft's explanation:
/// `node_modules/parent (1.0.0) asks for 4.17.20` (npm), `parent@1.0.0 depends on 4.17.20`
/// (pnpm, whose lock keeps the resolved version only), `parent@^1.0.0 (1.0.0) asks for
/// 4.17.20` (yarn).
pub fn dependents(manager: Manager, lock: &str, package: &str) -> Vec<String> {
    match manager {
        Manager::Npm => npm_dependents(lock, package),
        Manager::Pnpm | Manager::Yarn => block_dependents(manager, lock, package),
    }
}

fn npm_dependents(lock: &str, package: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (path, entry) in &super::npm::lock_entries(lock) {
        if path.is_empty() {
            continue;
        }
        let range = ["dependencies", "optionalDependencies", "peerDependencies"]
            .iter()
            .find_map(|kind| entry.get(kind)?.get(package)?.as_str());
        if let Some(range) = range {
            let version = entry.get("version").and_then(Value::as_str).unwrap_or("?");
            found.push(format!("{path} ({version}) asks for {range}"));
        }
    }
    found
}

/// A package of a pnpm or yarn lock that depends on the package asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHolder {
    /// The entry's specifiers (`parent@^1.0.0` in yarn, `parent@1.0.0` in pnpm).
    pub specs: Vec<String>,
    /// Its `version` line (yarn; pnpm keeps the version in the specifier).
    pub version: Option<String>,
    /// What it takes of the package (a range in yarn, the resolved version in pnpm).
    pub asked: String,
}

fn block_dependents(manager: Manager, lock: &str, package: &str) -> Vec<String> {
    let mut found: Vec<String> = block_holders(manager, lock, package)
        .into_iter()
        .map(|holder| {
            let entry = holder.specs.first().cloned().unwrap_or_default();
            let asked = holder.asked;
            match (manager, holder.version) {
                (Manager::Pnpm, _) => format!("{entry} depends on {asked}"),
                (_, Some(version)) => format!("{entry} ({version}) asks for {asked}"),
                (_, None) => format!("{entry} asks for {asked}"),
            }
        })
        .collect();
    found.dedup();
    found
}

/// pnpm and yarn locks share a shape: an entry's header, its `version`, and a
/// `dependencies:` block one level in whose lines name a package and what it takes
/// (`lodash: 4.17.20` in pnpm, `lodash "4.17.20"` in yarn 1, `lodash: "npm:4.17.20"` in
/// Berry). pnpm entries are indented by two (under `packages:` or `snapshots:`), yarn's not.
pub fn block_holders(manager: Manager, lock: &str, package: &str) -> Vec<BlockHolder> {
    let entry_indent = if manager == Manager::Pnpm { 2 } else { 0 };
    let indent_of = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let unquote = |text: &str| {
        text.trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned()
    };
    let mut found: Vec<BlockHolder> = Vec::new();
    let (mut specs, mut version, mut in_deps) = (None::<Vec<String>>, None::<String>, false);
    let mut asked_here: Option<String> = None;
    let mut flush =
        |specs: &Option<Vec<String>>, version: &Option<String>, asked: &mut Option<String>| {
            if let (Some(specs), Some(asked)) = (specs, asked.take()) {
                found.push(BlockHolder {
                    specs: specs.clone(),
                    version: version.clone(),
                    asked,
                });
            }
        };
    for line in lock.lines().filter(|line| !line.trim().is_empty()) {
        let (indent, content) = (indent_of(line), line.trim());
        if indent <= entry_indent {
            flush(&specs, &version, &mut asked_here);
            (specs, version, in_deps) = (None, None, false);
            if indent == entry_indent && content.ends_with(':') {
                let header = content.trim_end_matches(':');
                specs = Some(header.split(", ").map(unquote).collect());
            }
        } else if indent == entry_indent + 2 {
            in_deps = matches!(
                content,
                "dependencies:" | "optionalDependencies:" | "peerDependencies:"
            );
            if let Some(v) = content
                .strip_prefix("version ")
                .or_else(|| content.strip_prefix("version: "))
            {
                version = Some(unquote(v));
            }
        } else if indent == entry_indent + 4 && in_deps {
            let (name, asked) = match content.split_once(": ") {
                Some(pair) => pair,
                None => content.split_once(' ').unwrap_or((content, "")),
            };
            if unquote(name) == package {
                let asked = unquote(asked);
                asked_here = Some(asked.strip_prefix("npm:").unwrap_or(&asked).to_owned());
            }
        }
    }
    flush(&specs, &version, &mut asked_here);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The edit that forces lodash 4.17.21 on the project at `root`.
    fn fix_lodash(root: &Path, manager: Manager) -> Result<Edit, String> {
        edit(root, "package.json", manager, "lodash", "4.17.21")
    }

    #[test]
    fn an_entry_is_added_without_reformatting_the_manifest() {
        let manifest =
            "{\n    \"name\": \"web\",\n    \"dependencies\": {\"parent\": \"^1.0.0\"}\n}\n";
        let updated = add_entry(manifest, &["overrides"], "lodash", "4.17.21").unwrap();
        assert_eq!(
            updated,
            "{\n    \"name\": \"web\",\n    \"dependencies\": {\"parent\": \"^1.0.0\"},\n    \"overrides\": {\n        \"lodash\": \"4.17.21\"\n    }\n}\n"
        );
        let parsed: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(parsed["overrides"]["lodash"], "4.17.21");
        assert_eq!(
            add_entry("{}", &["overrides"], "a", "1").unwrap(),
            "{\n  \"overrides\": {\n    \"a\": \"1\"\n  }\n}"
        );
    }

    #[test]
    fn a_hostile_name_stays_one_string() {
        let name = "a\": \"1\", \"scripts\": {\"x\": \"y\"}, \"b\nc: d";
        let updated = add_entry("{}", &["resolutions"], name, "1").unwrap();
        let parsed: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(parsed.as_object().unwrap().len(), 1);
        assert_eq!(parsed["resolutions"][name], "1");
        let yaml = add_yaml_entry("packages: []\n", "overrides", name, "1").unwrap();
        assert_eq!(yaml.lines().count(), 3, "{yaml}");
    }

    #[test]
    fn a_nested_path_is_created_or_added_to_its_existing_parent() {
        let manifest = "{\n  \"name\": \"web\"\n}\n";
        let updated = add_entry(manifest, &["pnpm", "overrides"], "@scope/pkg", "2.0.1").unwrap();
        assert_eq!(
            updated,
            "{\n  \"name\": \"web\",\n  \"pnpm\": {\n    \"overrides\": {\n      \"@scope/pkg\": \"2.0.1\"\n    }\n  }\n}\n"
        );
        // An existing `pnpm` object (other settings, a string holding braces) keeps its
        // members and gains `overrides` as its last one.
        let manifest = "{\n  \"pnpm\": {\n    \"onlyBuiltDependencies\": [\"esbuild\"],\n    \"note\": \"} {\\\"\"\n  },\n  \"name\": \"web\"\n}\n";
        let updated = add_entry(manifest, &["pnpm", "overrides"], "lodash", "4.17.21").unwrap();
        assert_eq!(
            updated,
            "{\n  \"pnpm\": {\n    \"onlyBuiltDependencies\": [\"esbuild\"],\n    \"note\": \"} {\\\"\",\n    \"overrides\": {\n      \"lodash\": \"4.17.21\"\n    }\n  },\n  \"name\": \"web\"\n}\n"
        );
        let parsed: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(parsed["pnpm"]["overrides"]["lodash"], "4.17.21");
        assert_eq!(parsed["pnpm"]["note"], "} {\"");
        // An empty parent object takes the entry without a comma.
        let updated = add_entry("{\"pnpm\": {}}", &["pnpm", "overrides"], "a", "1").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&updated).unwrap(),
            serde_json::json!({"pnpm": {"overrides": {"a": "1"}}})
        );
    }

    #[test]
    fn an_existing_section_is_refused_not_merged() {
        let error = add_entry("{\"overrides\": {}}", &["overrides"], "lodash", "1").unwrap_err();
        assert!(error.contains("already a `overrides` section"), "{error}");
        let error = add_entry(
            "{\"pnpm\": {\"overrides\": {\"a\": \"1\"}}}",
            &["pnpm", "overrides"],
            "b",
            "2",
        )
        .unwrap_err();
        assert!(error.contains("`pnpm.overrides`"), "{error}");
        assert!(add_entry("{\"pnpm\": true}", &["pnpm", "overrides"], "a", "1").is_err());
        assert!(add_entry("[1]", &["overrides"], "a", "1").is_err());

        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| std::fs::write(root.path().join(path), text).unwrap();
        write(
            "package.json",
            "{\"resolutions\": {\"lodash\": \"4.17.19\"}}",
        );
        let error = fix_lodash(root.path(), Manager::Pnpm).unwrap_err();
        assert!(error.contains("`resolutions`"), "{error}");
        let error = fix_lodash(root.path(), Manager::Yarn).unwrap_err();
        assert!(error.contains("`resolutions`"), "{error}");
    }

    #[test]
    fn pnpm_writes_where_the_project_keeps_its_settings() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| std::fs::write(root.path().join(path), text).unwrap();
        write("package.json", "{\n  \"name\": \"web\"\n}\n");
        write("pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
        assert_eq!(
            Manager::beside(root.path(), "package.json"),
            Some((Manager::Pnpm, "pnpm-lock.yaml".to_owned()))
        );
        let (path, updated) = fix_lodash(root.path(), Manager::Pnpm).unwrap();
        assert_eq!(path, "package.json");
        let parsed: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(parsed["pnpm"]["overrides"]["lodash"], "4.17.21");

        write("pnpm-workspace.yaml", "packages:\n    - 'apps/*'\n");
        let (path, updated) = fix_lodash(root.path(), Manager::Pnpm).unwrap();
        assert_eq!(path, "pnpm-workspace.yaml");
        assert_eq!(
            updated,
            "packages:\n    - 'apps/*'\noverrides:\n    \"lodash\": \"4.17.21\"\n"
        );
        write(
            "pnpm-workspace.yaml",
            "packages: []\noverrides:\n  lodash: 4.17.19\n",
        );
        let error = fix_lodash(root.path(), Manager::Pnpm).unwrap_err();
        assert!(
            error.contains("pnpm-workspace.yaml") && error.contains("`overrides`"),
            "{error}"
        );
        assert!(add_yaml_entry("{packages: []}\n", "overrides", "a", "1").is_err());
        assert_eq!(
            add_yaml_entry("", "overrides", "@s/p", "1.0.0").unwrap(),
            "overrides:\n  \"@s/p\": \"1.0.0\"\n"
        );
    }

    #[test]
    fn dependents_name_what_they_ask_for() {
        let npm = r#"{"packages": {"": {"dependencies": {"parent": "^1"}},
            "node_modules/parent": {"version": "1.0.0", "dependencies": {"lodash": "4.17.20"}},
            "node_modules/lodash": {"version": "4.17.20"}}}"#;
        let pnpm = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      parent:\n        specifier: ^1.0.0\n        version: 1.0.0\n\npackages:\n\n  lodash@4.17.20:\n    resolution: {integrity: sha512-x}\n\n  parent@1.0.0:\n    resolution: {integrity: sha512-y}\n\nsnapshots:\n\n  lodash@4.17.20: {}\n\n  parent@1.0.0:\n    dependencies:\n      lodash: 4.17.20\n      lodash.merge: 4.6.2\n";
        let classic = "# yarn lockfile v1\n\n\nlodash@4.17.20:\n  version \"4.17.20\"\n\n\"parent@^1.0.0\", parent@^1.0.1:\n  version \"1.0.1\"\n  dependencies:\n    lodash \"4.17.20\"\n";
        let berry = "__metadata:\n  version: 8\n\n\"parent@npm:^1.0.0\":\n  version: 1.0.0\n  resolution: \"parent@npm:1.0.0\"\n  dependencies:\n    \"@scope/lodash\": \"npm:1.0.0\"\n    lodash: \"npm:4.17.20\"\n  checksum: 10c0/x\n";
        let cases = [
            (
                Manager::Npm,
                npm,
                "node_modules/parent (1.0.0) asks for 4.17.20",
            ),
            (Manager::Pnpm, pnpm, "parent@1.0.0 depends on 4.17.20"),
            (
                Manager::Yarn,
                classic,
                "parent@^1.0.0 (1.0.1) asks for 4.17.20",
            ),
            (
                Manager::Yarn,
                berry,
                "parent@npm:^1.0.0 (1.0.0) asks for 4.17.20",
            ),
        ];
        for (manager, lock, expected) in cases {
            assert_eq!(dependents(manager, lock, "lodash"), [expected], "{lock}");
        }
    }
}
