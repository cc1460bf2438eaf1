//! Version bump in `Cargo.toml`: finds the crate in every dependency table (plain, dev, build,
//! per-target and `[workspace.dependencies]`), by its real name even when renamed with
//! `package = "..."`, and rewrites the version string in place. toml_edit's parse keeps the
//! byte position of every value, so only the version text changes; quotes, comments, spacing and
//! order stay exactly as written.

use toml_edit::{Document, Item, TableLike};

use crate::patch::bump::constraint::{
    self, INEQUALITIES, Op, SEMVER_SHORTHANDS, Separator, Syntax,
};
use crate::patch::bump::toml_span;
use crate::patch::bump::{BumpError, BumpOutcome, Declaration, ManifestKind, apply_rewrites};

const KIND: ManifestKind = ManifestKind::CargoToml;

/// Cargo's comparator syntax: a bare version means `^`.
pub(super) const SYNTAX: Syntax = Syntax {
    separator: Separator::Comma,
    ops: &[INEQUALITIES, SEMVER_SHORTHANDS],
    bare: Some(Op::Caret),
};

/// Whether a Cargo version requirement (`1.2`, `=1.0.0`, `>=1, <2`) admits `version`; `None`
/// when either cannot be read, which is not a yes.
pub fn range_admits(requirement: &str, version: &str) -> Option<bool> {
    match requirement.trim() {
        "*" | "" => Some(true),
        requirement => constraint::admits(requirement, &SYNTAX, version),
    }
}

/// Cargo still accepts the old underscore spellings.
const DEPENDENCY_TABLES: &[&str] = &[
    "dependencies",
    "dev-dependencies",
    "dev_dependencies",
    "build-dependencies",
    "build_dependencies",
];

pub(super) fn bump(content: &str, package: &str, target: &str) -> Result<BumpOutcome, BumpError> {
    let document = toml_span::parse(KIND, content)?;
    let mut declarations = Vec::new();
    for (location, table) in dependency_tables(&document) {
        for (key, item) in table.iter() {
            let declared = match item.as_table_like() {
                Some(detail) => detail.get("package").and_then(Item::as_str).unwrap_or(key),
                None => key,
            };
            if !same_crate(declared, package) {
                continue;
            }
            if let Some(declaration) =
                declaration(content, &location, key, item).map_err(|reason| {
                    KIND.unsupported(package, format!("`{key}` in {location} {reason}"))
                })?
            {
                declarations.push(declaration);
            }
        }
    }

    let outcome = apply_rewrites(KIND, content, package, &declarations, |_, current| {
        constraint::bump(current, &SYNTAX, target)
    })?;
    toml_span::still_parses(KIND, outcome)
}

/// Every dependency table of the manifest, with a human-readable location.
fn dependency_tables<'a>(document: &'a Document<&str>) -> Vec<(String, &'a dyn TableLike)> {
    let root = document.as_table();
    let mut tables = Vec::new();
    for name in DEPENDENCY_TABLES {
        if let Some(table) = root.get(name).and_then(Item::as_table_like) {
            tables.push((format!("[{name}]"), table));
        }
    }
    if let Some(targets) = root.get("target").and_then(Item::as_table_like) {
        for (cfg, target) in targets.iter() {
            let Some(target) = target.as_table_like() else {
                continue;
            };
            for name in DEPENDENCY_TABLES {
                if let Some(table) = target.get(name).and_then(Item::as_table_like) {
                    tables.push((format!("[target.'{cfg}'.{name}]"), table));
                }
            }
        }
    }
    if let Some(table) = root
        .get("workspace")
        .and_then(Item::as_table_like)
        .and_then(|workspace| workspace.get("dependencies"))
        .and_then(Item::as_table_like)
    {
        tables.push(("[workspace.dependencies]".to_owned(), table));
    }
    tables
}

/// crates.io treats `-` and `_` as the same name, and names are case-insensitive.
fn same_crate(a: &str, b: &str) -> bool {
    let normalise = |name: &str| name.to_ascii_lowercase().replace('-', "_");
    normalise(a) == normalise(b)
}

/// The version declaration of one dependency entry: `Ok(None)` when the entry inherits from
/// the workspace, an error reason when it names no registry version we can rewrite.
fn declaration(
    content: &str,
    location: &str,
    key: &str,
    item: &Item,
) -> Result<Option<Declaration>, String> {
    let version = match item.as_table_like() {
        Some(detail) => {
            if detail.get("workspace").and_then(Item::as_bool) == Some(true) {
                return Ok(None);
            }
            if detail.contains_key("path") {
                return Err("is a path dependency; it is not fetched from a registry".to_owned());
            }
            if detail.contains_key("git") {
                return Err(
                    "is a git dependency; pin a fixed revision or switch to a registry version by hand"
                        .to_owned(),
                );
            }
            detail
                .get("version")
                .ok_or_else(|| "declares no version".to_owned())?
        }
        None => item,
    };
    let value = version
        .as_value()
        .ok_or_else(|| "has a version that is not a string".to_owned())?;
    Ok(Some(Declaration {
        span: toml_span::version_span(content, value)?,
        location: format!("{location} (`{key}`)"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::bump::test_support::Format;

    const FORMAT: Format = Format(bump);

    const REALISTIC: &str = r#"# Workspace root of the demo service.
[package]
name = "demo-service"
version = "0.3.1"
edition = "2021"
rust-version = "1.70"

[dependencies]
# HTTP stack
hyper = { version = "0.14.10", features = ["full"] }   # keep in sync with axum
axum = "0.6"
serde = { version = "1.0.150", features = ["derive"] }
serde_json = '1.0.80'
openssl = { version = "~0.10.45", optional = true }
time = "=0.3.17"
regex = ">=1.5, <2"
local-helper = { path = "crates/helper" }

[dependencies.tokio]
version = "^1.20"
features = ["rt-multi-thread", "macros"]

[dev-dependencies]
hyper = { version = "0.14.10", features = ["client"] }

[target.'cfg(windows)'.dependencies]
winapi = { version = "0.3.9", features = ["winsock2"] }

[target.'cfg(unix)'.dependencies]
nix = "0.26"

[features]
default = []
tls = ["openssl"]
"#;

    #[test]
    fn bumps_an_inline_table_in_every_table_that_declares_the_crate() {
        let expected = REALISTIC
            .replace(
                r#"hyper = { version = "0.14.10", features = ["full"] }"#,
                r#"hyper = { version = "0.14.26", features = ["full"] }"#,
            )
            .replace(
                r#"hyper = { version = "0.14.10", features = ["client"] }"#,
                r#"hyper = { version = "0.14.26", features = ["client"] }"#,
            );
        assert_ne!(expected, REALISTIC);
        FORMAT.assert_bumps_to(
            REALISTIC,
            "hyper",
            "0.14.26",
            ("0.14.10", "0.14.26"),
            &expected,
        );
    }

    #[test]
    fn keeps_every_operator_and_quote_style() {
        let cases = [
            ("axum", "0.6.20", "axum = \"0.6\"", "axum = \"0.6.20\""),
            (
                "serde_json",
                "1.0.108",
                "serde_json = '1.0.80'",
                "serde_json = '1.0.108'",
            ),
            (
                "openssl",
                "0.10.55",
                r#"openssl = { version = "~0.10.45", optional = true }"#,
                r#"openssl = { version = "~0.10.55", optional = true }"#,
            ),
            ("time", "0.3.23", "time = \"=0.3.17\"", "time = \"=0.3.23\""),
            (
                "regex",
                "1.5.5",
                "regex = \">=1.5, <2\"",
                "regex = \">=1.5.5, <2\"",
            ),
            (
                "tokio",
                "1.28.2",
                "version = \"^1.20\"",
                "version = \"^1.28.2\"",
            ),
        ];
        FORMAT.assert_rewrites(REALISTIC, &cases);
    }

    #[test]
    fn bumps_target_specific_tables() {
        FORMAT.assert_moves(
            REALISTIC,
            "winapi",
            "0.3.10",
            ("0.3.9", "0.3.10"),
            (
                r#"winapi = { version = "0.3.9", features"#,
                r#"winapi = { version = "0.3.10", features"#,
            ),
        );
        FORMAT.assert_rewrites(
            REALISTIC,
            &[("nix", "0.27.1", "nix = \"0.26\"", "nix = \"0.27.1\"")],
        );
    }

    #[test]
    fn crate_names_match_across_dash_and_underscore() {
        let (updated, _, _) = FORMAT.bumped(REALISTIC, "serde-json", "1.0.108");
        assert!(updated.contains("serde_json = '1.0.108'"));
    }

    #[test]
    fn renamed_dependencies_match_on_the_real_crate_name() {
        let manifest = "[dependencies]\n\
                        # old API still used in one place\n\
                        rand07 = { package = \"rand\", version = \"0.7.3\" }\n\
                        rand = \"0.8.4\"\n";
        // The 0.7 line is bumped too: every declaration of a vulnerable crate must move.
        FORMAT.assert_bumps_to(
            manifest,
            "rand",
            "0.8.5",
            ("0.7.3", "0.8.5"),
            "[dependencies]\n\
             # old API still used in one place\n\
             rand07 = { package = \"rand\", version = \"0.8.5\" }\n\
             rand = \"0.8.5\"\n",
        );
        // The key of a renamed dependency is not a crate name.
        FORMAT.assert_not_declared(manifest, &["rand07"], "0.8.5");
    }

    #[test]
    fn workspace_dependencies_are_bumped_and_members_inheriting_them_are_not() {
        let root = "[workspace]\nmembers = [\"crates/*\"]\n\n[workspace.dependencies]\nserde = { version = \"1.0.100\", default-features = false }\nh2 = \"0.3.15\"\n";
        FORMAT.assert_rewrites(
            root,
            &[("h2", "0.3.24", "h2 = \"0.3.15\"", "h2 = \"0.3.24\"")],
        );

        let member = "[package]\nname = \"member\"\n\n[dependencies]\nh2 = { workspace = true }\nserde.workspace = true\n";
        FORMAT.assert_not_declared(member, &["h2"], "0.3.24");
        FORMAT.assert_not_declared(member, &["serde"], "1.0.200");
    }

    #[test]
    fn dotted_keys_and_table_headers_are_found() {
        let manifest = "[package]\nname = \"x\"\n\n[dev-dependencies.proptest]\nversion = \"1.0\" # property tests\ndefault-features = false\n\n[build-dependencies]\ncc.version = \"1.0.70\"\n";
        let cases = [
            (
                "proptest",
                "1.4.0",
                "version = \"1.0\" # property",
                "version = \"1.4.0\" # property",
            ),
            ("cc", "1.0.83", "\"1.0.70\"", "\"1.0.83\""),
        ];
        FORMAT.assert_rewrites(manifest, &cases);
    }

    #[test]
    fn already_satisfied_and_not_declared() {
        FORMAT.assert_satisfied(REALISTIC, &[("axum", "0.5.0", "0.6")]);
        FORMAT.assert_not_declared(REALISTIC, &["reqwest"], "0.11.0");
        // A feature or package name that merely mentions the crate is not a declaration.
        FORMAT.assert_not_declared(REALISTIC, &["demo-service"], "1.0.0");
    }

    #[test]
    fn unbumpable_declarations_are_reported() {
        FORMAT.assert_refused(REALISTIC, &[("local-helper", "1.0.0", "path dependency")]);

        let git = "[dependencies]\nfoo = { git = \"https://example.com/foo\", tag = \"v1\" }\n";
        FORMAT.assert_refused(git, &[("foo", "1.0.0", "git dependency")]);

        let inclusive = "[dependencies]\nregex = \">=1.5, <=1.9\"\n";
        assert_eq!(
            FORMAT.reason(inclusive, "regex", "2.1.0"),
            "cannot bump `regex` in Cargo.toml: the constraint `>=1.5, <=1.9` in [dependencies] \
             (`regex`) is not bumped automatically: its bound `<=1.9` excludes 2.1.0, and a \
             bound written with `<=` has no window width to keep; widen the range by hand"
        );

        let star = "[dependencies]\nlibc = \"*\"\n";
        assert!(bump(star, "libc", "0.2.150").is_err());

        let escaped = "[dependencies]\nlibc = \"\\u0030.2.100\"\n";
        assert!(bump(escaped, "libc", "0.2.150").is_err());
    }

    #[test]
    fn capped_ranges_are_widened_in_their_own_precision() {
        let manifest =
            "[dependencies]\nbytes = { version = \">=1.2, <1.4\", default-features = false }\n";
        FORMAT.assert_widened(manifest, "bytes", "1.4.0", ">=1.2, <1.4", ">=1.4, <1.5");
        FORMAT.assert_moves(
            REALISTIC,
            "regex",
            "2.1.0",
            (">=1.5, <2", ">=2.1, <3"),
            ("regex = \">=1.5, <2\"", "regex = \">=2.1, <3\""),
        );
        // A caret past its major moves to the fix's, still written with two numbers.
        FORMAT.assert_rewrites(
            REALISTIC,
            &[(
                "tokio",
                "2.0.0",
                "version = \"^1.20\"",
                "version = \"^2.0\"",
            )],
        );
    }

    #[test]
    fn invalid_toml_is_a_parse_error() {
        FORMAT.assert_parse_error("Cargo.toml", "[dependencies\nserde = 1", "serde", "1.0.0");
    }

    #[test]
    fn crlf_and_missing_trailing_newline_are_preserved() {
        let manifest = "[dependencies]\r\nserde = \"1.0.100\"\r\nlog = \"0.4\"";
        FORMAT.assert_updates(&[(
            manifest,
            "log",
            "0.4.20",
            "[dependencies]\r\nserde = \"1.0.100\"\r\nlog = \"0.4.20\"",
        )]);
    }
}
