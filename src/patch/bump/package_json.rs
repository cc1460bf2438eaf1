//! Version bump in `package.json`: finds the package in the dependency sections and rewrites
//! its range string in place, leaving every other byte (key order, indentation, spacing) as
//! the author wrote it. serde_json validates and reads the file; `json_span` finds the bytes.

use serde_json::Value;

use crate::patch::bump::constraint::{
    self, INEQUALITIES, Op, SEMVER_SHORTHANDS, Separator, Syntax,
};
use crate::patch::bump::json_span;
use crate::patch::bump::{BumpError, BumpOutcome, Declaration, ManifestKind, apply_rewrites};

const KIND: ManifestKind = ManifestKind::PackageJson;

const SECTIONS: &[&str] = &[
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
];

/// npm's range syntax: a bare version is an exact pin; comparators are separated by spaces.
pub(super) const SYNTAX: Syntax = Syntax {
    separator: Separator::Whitespace,
    ops: &[INEQUALITIES, SEMVER_SHORTHANDS],
    bare: Some(Op::Exact),
};

/// Specs that name a source other than the registry; a version bump does not apply to them.
const NON_REGISTRY_PREFIXES: &[&str] = &[
    "workspace:",
    "file:",
    "link:",
    "portal:",
    "patch:",
    "npm:",
    "git:",
    "git+",
    "github:",
    "gitlab:",
    "bitbucket:",
    "gist:",
    "http:",
    "https:",
];

pub(super) fn bump(content: &str, package: &str, target: &str) -> Result<BumpOutcome, BumpError> {
    let parse_error = |detail: String| KIND.parse_error(detail);
    let root: Value =
        serde_json::from_str(content).map_err(|error| parse_error(error.to_string()))?;
    let root = root
        .as_object()
        .ok_or_else(|| parse_error("the top level is not a JSON object".to_owned()))?;

    let mut declarations = Vec::new();
    for section in SECTIONS {
        let Some(spec) = root
            .get(*section)
            .and_then(Value::as_object)
            .and_then(|dependencies| dependencies.get(package))
        else {
            continue;
        };
        let unsupported = |reason: &str| {
            KIND.unsupported(package, format!("its entry in \"{section}\" {reason}"))
        };
        let Some(spec) = spec.as_str() else {
            return Err(unsupported("is not a string"));
        };
        let token = json_span::locate(content, &[section, package])
            .map_err(parse_error)?
            .ok_or_else(|| unsupported("could not be located in the text; this is a bug"))?;
        let inner = token.start + 1..token.end - 1;
        if content.get(inner.clone()) != Some(spec) {
            return Err(unsupported("is written with JSON escapes; edit it by hand"));
        }
        declarations.push(Declaration {
            span: inner,
            location: format!("\"{section}\""),
        });
    }

    apply_rewrites(KIND, content, package, &declarations, |_, current| {
        let spec = current.trim();
        if let Some(prefix) = NON_REGISTRY_PREFIXES
            .iter()
            .find(|prefix| spec.to_ascii_lowercase().starts_with(**prefix))
        {
            return Err(format!(
                "`{prefix}` specs do not come from the registry; update the source it points to"
            ));
        }
        if spec.contains('/') {
            return Err("it points to a repository or path, not a registry version".to_owned());
        }
        if spec.is_empty() || spec.eq_ignore_ascii_case("latest") || spec == "*" || spec == "x" {
            return Err(
                "it accepts any version; the lockfile decides, so update the lockfile or pin a range"
                    .to_owned(),
            );
        }
        if !spec.starts_with(|c: char| c.is_ascii_digit() || "<>=^~vV".contains(c)) {
            return Err("it is a dist-tag, not a version range".to_owned());
        }
        constraint::bump(current, &SYNTAX, target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::bump::test_support::Format;

    const FORMAT: Format = Format(bump);

    const REALISTIC: &str = r#"{
  "name": "@acme/storefront",
  "version": "2.4.0",
  "private": true,
  "description": "Storefront web app",
  "main": "dist/index.js",
  "scripts": {
    "build": "tsc -p .",
    "test": "jest --coverage",
    "lint": "eslint . --ext .ts,.tsx"
  },
  "engines": {
    "node": ">=18"
  },
  "dependencies": {
    "axios": "^0.21.1",
    "express": "~4.17.1",
    "lodash": "4.17.15",
    "minimist": ">=1.2.0 <2.0.0",
    "semver": "=7.5.1",
    "@acme/ui": "workspace:*",
    "left-pad": "file:../left-pad",
    "debug": "*",
    "request": "latest",
    "qs": "github:ljharb/qs#v6.5.3",
    "string-width-cjs": "npm:string-width@^4.2.0"
  },
  "devDependencies": {
    "jest": "^29.7.0",
    "typescript": "5.2.2",
    "axios": "^0.21.1"
  },
  "peerDependencies": {
    "react": "^17.0.0 || ^18.0.0"
  },
  "optionalDependencies": {
    "fsevents": "~2.3.2"
  }
}
"#;

    #[test]
    fn bumps_a_caret_range_in_every_section_and_nothing_else() {
        let updated = FORMAT.assert_moves(
            REALISTIC,
            "axios",
            "0.21.2",
            ("^0.21.1", "^0.21.2"),
            ("\"axios\": \"^0.21.1\"", "\"axios\": \"^0.21.2\""),
        );
        assert_eq!(updated.matches("^0.21.2").count(), 2);
    }

    #[test]
    fn keeps_the_range_style() {
        let cases = [
            ("express", "4.17.3", "\"~4.17.1\"", "\"~4.17.3\""),
            ("lodash", "4.17.21", "\"4.17.15\"", "\"4.17.21\""),
            (
                "minimist",
                "1.2.6",
                "\">=1.2.0 <2.0.0\"",
                "\">=1.2.6 <2.0.0\"",
            ),
            ("semver", "7.5.2", "\"=7.5.1\"", "\"=7.5.2\""),
            ("fsevents", "2.3.3", "\"~2.3.2\"", "\"~2.3.3\""),
            ("typescript", "5.2.3", "\"5.2.2\"", "\"5.2.3\""),
        ];
        FORMAT.assert_rewrites(REALISTIC, &cases);
    }

    #[test]
    fn full_expected_output_of_a_small_manifest() {
        let before = "{\n  \"name\": \"tool\",\n  \"dependencies\": {\n    \"minimist\": \"^1.2.0\",\n    \"chalk\": \"^4.1.2\"\n  }\n}\n";
        let after = "{\n  \"name\": \"tool\",\n  \"dependencies\": {\n    \"minimist\": \"^1.2.6\",\n    \"chalk\": \"^4.1.2\"\n  }\n}\n";
        FORMAT.assert_updates(&[(before, "minimist", "1.2.6", after)]);
    }

    #[test]
    fn compact_and_tab_indented_json_is_preserved() {
        let compact = r#"{"dependencies":{"ws":"^7.4.5"},"name":"x"}"#;
        let tabs = "{\n\t\"devDependencies\": {\n\t\t\"ws\" :  \"7.4.5\"\n\t}\n}";
        FORMAT.assert_updates(&[
            (
                compact,
                "ws",
                "7.4.6",
                r#"{"dependencies":{"ws":"^7.4.6"},"name":"x"}"#,
            ),
            (
                tabs,
                "ws",
                "7.4.6",
                "{\n\t\"devDependencies\": {\n\t\t\"ws\" :  \"7.4.6\"\n\t}\n}",
            ),
        ]);
    }

    #[test]
    fn a_package_named_only_outside_dependency_sections_is_not_declared() {
        // "build" is a script name and "node" an engine, not dependencies.
        FORMAT.assert_not_declared(REALISTIC, &["jest-cli", "build"], "1.0.0");
        FORMAT.assert_not_declared(REALISTIC, &["node"], "20.0.0");
    }

    #[test]
    fn already_satisfied() {
        FORMAT.assert_satisfied(REALISTIC, &[("jest", "29.0.0", "^29.7.0")]);
    }

    #[test]
    fn non_registry_specs_and_open_ranges_are_left_alone() {
        for (package, needle) in [
            ("@acme/ui", "`workspace:`"),
            ("left-pad", "`file:`"),
            ("qs", "`github:`"),
            ("string-width-cjs", "`npm:`"),
            ("debug", "accepts any version"),
            ("request", "accepts any version"),
            ("react", "`||`"),
        ] {
            FORMAT.assert_refused(REALISTIC, &[(package, "99.0.0", needle)]);
        }
        let tagged = r#"{"dependencies": {"next": "canary"}}"#;
        FORMAT.assert_refused(tagged, &[("next", "14.0.0", "dist-tag")]);
    }

    #[test]
    fn capped_ranges_are_widened_to_the_same_width() {
        let before = "{\n  \"dependencies\": {\n    \"ms\": \">=1.0.0 <1.1.0\"\n  }\n}\n";
        FORMAT.assert_widened(before, "ms", "1.1.0", ">=1.0.0 <1.1.0", ">=1.1.0 <1.2.0");
        // A major window stays a major window.
        FORMAT.assert_moves(
            REALISTIC,
            "minimist",
            "2.1.0",
            (">=1.2.0 <2.0.0", ">=2.1.0 <3.0.0"),
            ("\">=1.2.0 <2.0.0\"", "\">=2.1.0 <3.0.0\""),
        );
        // A tilde past its minor moves to the fix's minor.
        FORMAT.assert_rewrites(
            REALISTIC,
            &[("express", "4.18.2", "\"~4.17.1\"", "\"~4.18.2\"")],
        );
    }

    #[test]
    fn a_range_inside_its_window_is_raised_not_widened() {
        assert!(matches!(
            bump(REALISTIC, "express", "4.17.3"),
            Ok(BumpOutcome::Bumped { widened: false, .. })
        ));
    }

    #[test]
    fn invalid_json_is_a_parse_error() {
        FORMAT.assert_parse_error("package.json", "{\"dependencies\": {", "x", "1.0.0");
        FORMAT.assert_parse_error("package.json", "[]", "x", "1.0.0");
    }

    #[test]
    fn escaped_specs_are_refused_rather_than_rewritten() {
        let escaped = r#"{"dependencies": {"ws": "\u005e7.4.5"}}"#;
        FORMAT.assert_refused(escaped, &[("ws", "7.4.6", "escapes")]);
    }
}

/// Whether an npm range (`^4.17.21`, `>=1 <2`, `4.17.20`) admits `version`; `None` when the
/// range cannot be read here (`||`, tags, URLs), which is not a yes.
pub fn range_admits(range: &str, version: &str) -> Option<bool> {
    if range.contains("||") || range.trim() == "*" || range.trim().is_empty() {
        return match range.trim() {
            "*" | "" => Some(true),
            _ => None,
        };
    }
    constraint::admits(range.trim(), &SYNTAX, version)
}

#[cfg(test)]
mod range_tests {
    use super::range_admits;

    #[test]
    fn npm_ranges_admit_what_npm_would() {
        assert_eq!(range_admits("^4.17.20", "4.17.21"), Some(true));
        assert_eq!(range_admits("4.17.20", "4.17.21"), Some(false));
        assert_eq!(range_admits("~1.2.3", "1.3.0"), Some(false));
        assert_eq!(range_admits(">=1.0.0 <2.0.0", "1.5.0"), Some(true));
        assert_eq!(range_admits("*", "9.0.0"), Some(true));
        assert_eq!(range_admits("^1 || ^2", "2.0.0"), None);
    }
}
