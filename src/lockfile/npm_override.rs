//! The last resort for a transitive npm package that its dependents pin below the fix: an
//! `overrides` entry in the root `package.json` that makes npm resolve the fixed version for
//! every dependent. It changes what versions the dependents were tested with, so the pull
//! request is a draft that says which dependents asked for what. `lockfiles.overrides = false`
//! turns it off (the job then fails, naming the dependents).

use serde_json::Value;

/// `package.json` with `"overrides": {"PACKAGE": "VERSION"}` added, as text: the rest of the
/// file keeps its order and formatting (a reformatted manifest would be a noisy diff).
pub fn add_override(manifest: &str, package: &str, version: &str) -> Result<String, String> {
    let parsed: Value =
        serde_json::from_str(manifest).map_err(|e| format!("package.json is not JSON: {e}"))?;
    let Some(object) = parsed.as_object() else {
        return Err("package.json is not a JSON object".to_owned());
    };
    if object.contains_key("overrides") {
        return Err(
            "package.json already has an `overrides` section; the worker does not merge into it"
                .to_owned(),
        );
    }
    let close = manifest
        .rfind('}')
        .ok_or_else(|| "package.json has no closing brace".to_owned())?;
    let indent = manifest
        .lines()
        .nth(1)
        .map(|line| &line[..line.len() - line.trim_start().len()])
        .filter(|indent| !indent.is_empty())
        .unwrap_or("  ");
    let body = manifest[..close].trim_end();
    let comma = if body.ends_with('{') { "" } else { "," };
    let entry = format!(
        "{comma}\n{indent}\"overrides\": {{\n{indent}{indent}{}: {}\n{indent}}}\n",
        Value::String(package.to_owned()),
        Value::String(version.to_owned())
    );
    Ok(format!("{body}{entry}{}", &manifest[close..]))
}

/// Who asks for the package in an npm lock (v2/v3): `node_modules/parent (parent 1.0.0) asks
/// for 4.17.20`, for the draft's explanation.
pub fn dependents(lock: &str, package: &str) -> Vec<String> {
    let Ok(json) = serde_json::from_str::<Value>(lock) else {
        return Vec::new();
    };
    let Some(packages) = json.get("packages").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (path, entry) in packages {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_is_added_without_reformatting_the_manifest() {
        let manifest =
            "{\n    \"name\": \"web\",\n    \"dependencies\": {\"parent\": \"^1.0.0\"}\n}\n";
        let updated = add_override(manifest, "lodash", "4.17.21").unwrap();
        assert_eq!(
            updated,
            "{\n    \"name\": \"web\",\n    \"dependencies\": {\"parent\": \"^1.0.0\"},\n    \"overrides\": {\n        \"lodash\": \"4.17.21\"\n    }\n}\n"
        );
        let parsed: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(parsed["overrides"]["lodash"], "4.17.21");
        assert!(add_override("{\"overrides\": {}}", "lodash", "1").is_err());
        assert_eq!(
            add_override("{}", "a", "1").unwrap(),
            "{\n  \"overrides\": {\n    \"a\": \"1\"\n  }\n}"
        );
    }

    #[test]
    fn dependents_name_what_they_ask_for() {
        let lock = r#"{"packages": {"": {"dependencies": {"parent": "^1"}},
            "node_modules/parent": {"version": "1.0.0", "dependencies": {"lodash": "4.17.20"}},
            "node_modules/lodash": {"version": "4.17.20"}}}"#;
        assert_eq!(
            dependents(lock, "lodash"),
            ["node_modules/parent (1.0.0) asks for 4.17.20"]
        );
    }
}
