//! Version bump in `pyproject.toml`: the PEP 621 lists (`[project] dependencies`,
//! `[project.optional-dependencies]`), PEP 735 `[dependency-groups]`, and Poetry's dependency
//! tables (`[tool.poetry.dependencies]`, `[tool.poetry.group.<g>.dependencies]`,
//! `[tool.poetry.dev-dependencies]`). PEP 508 strings follow the requirements.txt rules; Poetry
//! constraints add `^`, `~` and bare exact versions. toml_edit's spans locate the version text,
//! so only it changes; comments, order and formatting stay as written.

use std::collections::HashSet;

use toml_edit::{Item, TableLike, Value};

use crate::patch::bump::constraint::{
    self, Op, PEP440_OPERATORS, SEMVER_SHORTHANDS, Separator, Syntax,
};
use crate::patch::bump::requirements_txt;
use crate::patch::bump::toml_span::{self, string_prefix};
use crate::patch::bump::{BumpError, BumpOutcome, Declaration, ManifestKind, apply_rewrites};

const KIND: ManifestKind = ManifestKind::PyprojectToml;

/// Poetry's constraint syntax: PEP 440 operators, then `=`, `^` and `~`; a bare version is
/// an exact pin.
const POETRY_SYNTAX: Syntax = Syntax {
    separator: Separator::Comma,
    ops: &[PEP440_OPERATORS, SEMVER_SHORTHANDS],
    bare: Some(Op::Exact),
};

/// Poetry keys naming a source other than the package index.
const POETRY_NON_REGISTRY: &[(&str, &str)] = &[
    (
        "path",
        "is a path dependency; it is not fetched from the package index",
    ),
    ("git", "is a git dependency; pin a fixed revision by hand"),
    ("url", "is installed from a URL; update the URL by hand"),
];

pub(super) fn bump(content: &str, package: &str, target: &str) -> Result<BumpOutcome, BumpError> {
    let document = toml_span::parse(KIND, content)?;
    let unsupported = |reason: String| KIND.unsupported(package, reason);
    let wanted = requirements_txt::pep503_name(package);
    let root = document.as_table();

    // Spans of PEP 508 specifiers; every other declaration is a Poetry constraint.
    let mut pep508 = HashSet::new();
    let mut declarations = Vec::new();
    for (location, list) in pep508_lists(root) {
        for declaration in
            pep508_declarations(content, &location, list, &wanted).map_err(&unsupported)?
        {
            pep508.insert(declaration.span.start);
            declarations.push(declaration);
        }
    }
    for (location, table) in poetry_tables(root) {
        for (key, item) in table.iter() {
            if key == "python" || requirements_txt::pep503_name(key) != wanted {
                continue;
            }
            let location = format!("{location} (`{key}`)");
            let found = poetry_declarations(content, &location, item)
                .map_err(|reason| unsupported(format!("{location} {reason}")))?;
            declarations.extend(found);
        }
    }

    let outcome = apply_rewrites(
        KIND,
        content,
        package,
        &declarations,
        |declaration, current| {
            if pep508.contains(&declaration.span.start) {
                return requirements_txt::rewrite_specifier(current, target);
            }
            constraint::bump(current, &POETRY_SYNTAX, target)
        },
    )?;
    toml_span::still_parses(KIND, outcome)
}

/// Every list of PEP 508 strings, with a human-readable location.
fn pep508_lists(root: &toml_edit::Table) -> Vec<(String, &Item)> {
    let mut lists = Vec::new();
    let project = root.get("project").and_then(Item::as_table_like);
    if let Some(dependencies) = project.and_then(|project| project.get("dependencies")) {
        lists.push(("[project] dependencies".to_owned(), dependencies));
    }
    let optional = project
        .and_then(|project| project.get("optional-dependencies"))
        .and_then(Item::as_table_like);
    for (group, list) in optional.into_iter().flat_map(TableLike::iter) {
        lists.push((format!("[project.optional-dependencies] `{group}`"), list));
    }
    let groups = root.get("dependency-groups").and_then(Item::as_table_like);
    for (group, list) in groups.into_iter().flat_map(TableLike::iter) {
        lists.push((format!("[dependency-groups] `{group}`"), list));
    }
    lists
}

/// The entries of one PEP 508 list that name the package. Entries that are not strings
/// (`{include-group = "..."}` in a dependency group) name no package.
fn pep508_declarations(
    content: &str,
    location: &str,
    list: &Item,
    wanted: &str,
) -> Result<Vec<Declaration>, String> {
    let mut found = Vec::new();
    let Some(array) = list.as_array() else {
        return Ok(found);
    };
    for value in array.iter() {
        let Some(decoded) = value.as_str() else {
            continue;
        };
        let Some(requirement) = requirements_txt::parse_line(decoded, 0..decoded.len()) else {
            continue;
        };
        if requirements_txt::pep503_name(requirement.name) != wanted {
            continue;
        }
        let entry = format!("the entry \"{decoded}\" in {location}");
        if requirement.url {
            return Err(format!(
                "{entry} installs the package from a URL; update the URL by hand"
            ));
        }
        let Some(spec) = requirement.spec else {
            return Err(format!(
                "{entry} declares no version; the installed version is chosen elsewhere (a lock \
                 file such as poetry.lock or uv.lock)"
            ));
        };
        let prefix = value
            .span()
            .and_then(|token| string_prefix(content, token, decoded, spec.end))
            .ok_or_else(|| format!("{entry} is written with escapes before its version"))?;
        found.push(Declaration {
            span: prefix.start + spec.start..prefix.end,
            location: location.to_owned(),
        });
    }
    Ok(found)
}

/// Poetry's dependency tables, with a human-readable location.
fn poetry_tables(root: &toml_edit::Table) -> Vec<(String, &dyn TableLike)> {
    let mut tables = Vec::new();
    let Some(poetry) = root
        .get("tool")
        .and_then(Item::as_table_like)
        .and_then(|tool| tool.get("poetry"))
        .and_then(Item::as_table_like)
    else {
        return tables;
    };
    for name in ["dependencies", "dev-dependencies"] {
        if let Some(table) = poetry.get(name).and_then(Item::as_table_like) {
            tables.push((format!("[tool.poetry.{name}]"), table));
        }
    }
    let groups = poetry.get("group").and_then(Item::as_table_like);
    for (group, definition) in groups.into_iter().flat_map(TableLike::iter) {
        if let Some(table) = definition
            .as_table_like()
            .and_then(|definition| definition.get("dependencies"))
            .and_then(Item::as_table_like)
        {
            tables.push((format!("[tool.poetry.group.{group}.dependencies]"), table));
        }
    }
    tables
}

/// The version strings of one Poetry dependency: a string, a table with `version`, or a list
/// of such tables (Poetry's multiple constraints, one per Python version or platform).
fn poetry_declarations(
    content: &str,
    location: &str,
    item: &Item,
) -> Result<Vec<Declaration>, String> {
    let mut tables: Vec<&dyn TableLike> = Vec::new();
    if let Some(array) = item.as_array() {
        for value in array.iter() {
            let table = value
                .as_inline_table()
                .ok_or_else(|| "lists a constraint that is not a table".to_owned())?;
            tables.push(table);
        }
    } else if let Some(array) = item.as_array_of_tables() {
        tables.extend(array.iter().map(|table| table as &dyn TableLike));
    } else if let Some(table) = item.as_table_like() {
        tables.push(table);
    } else {
        let value = item
            .as_value()
            .ok_or_else(|| "is not a version string or table".to_owned())?;
        return Ok(vec![string_declaration(content, location, value)?]);
    }

    let mut found = Vec::new();
    for table in tables {
        if let Some((_, reason)) = POETRY_NON_REGISTRY
            .iter()
            .find(|(key, _)| table.contains_key(key))
        {
            return Err((*reason).to_owned());
        }
        let version = table
            .get("version")
            .and_then(Item::as_value)
            .ok_or_else(|| "declares no version".to_owned())?;
        found.push(string_declaration(content, location, version)?);
    }
    Ok(found)
}

/// The declaration of one Poetry version string.
fn string_declaration(content: &str, location: &str, value: &Value) -> Result<Declaration, String> {
    Ok(Declaration {
        span: toml_span::version_span(content, value)?,
        location: location.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::bump::test_support::Format;

    const FORMAT: Format = Format(bump);

    const PEP621: &str = r#"[build-system]
requires = ["setuptools>=61.0", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-api"
version = "1.4.0"
requires-python = ">=3.8"
# Runtime dependencies; keep in sync with docs/install.md.
dependencies = [
    "Django>=3.2.18,<4.0",  # LTS line
    "requests[socks] ~= 2.25.1",
    'PyYAML==5.4',
    "importlib-metadata>=4.8; python_version < \"3.8\"",
    "cryptography",
    "internal-lib @ https://example.com/internal-lib-1.0.tar.gz",
]

[project.optional-dependencies]
postgres = ["psycopg2-binary>=2.8.6"]
test = [
    "pytest>=7.0",
    "requests-mock==1.9.3",
]

[dependency-groups]
dev = [{ include-group = "lint" }, "pytest>=6.2"]
lint = ["ruff==0.1.0"]

[tool.setuptools]
packages = ["acme_api"]
"#;

    #[test]
    fn bumps_a_pep621_dependency_and_keeps_comments_and_quotes() {
        // Only the version changes: the comment, the quotes and every other line stay.
        FORMAT.assert_moves(
            PEP621,
            "django",
            "3.2.19",
            (">=3.2.18,<4.0", ">=3.2.19,<4.0"),
            (
                "\"Django>=3.2.18,<4.0\",  # LTS line",
                "\"Django>=3.2.19,<4.0\",  # LTS line",
            ),
        );
    }

    #[test]
    fn keeps_extras_literal_strings_and_escaped_markers() {
        let cases = [
            (
                "requests",
                "2.31.0",
                "\"requests[socks] ~= 2.25.1\"",
                "\"requests[socks] ~= 2.31.0\"",
            ),
            ("pyyaml", "5.4.1", "'PyYAML==5.4'", "'PyYAML==5.4.1'"),
            (
                "importlib_metadata",
                "4.8.3",
                r#""importlib-metadata>=4.8; python_version < \"3.8\"""#,
                r#""importlib-metadata>=4.8.3; python_version < \"3.8\"""#,
            ),
        ];
        FORMAT.assert_rewrites(PEP621, &cases);
    }

    #[test]
    fn bumps_optional_dependencies_and_dependency_groups_everywhere_declared() {
        FORMAT.assert_moves(
            PEP621,
            "psycopg2-binary",
            "2.9.9",
            (">=2.8.6", ">=2.9.9"),
            (
                "postgres = [\"psycopg2-binary>=2.8.6\"]",
                "postgres = [\"psycopg2-binary>=2.9.9\"]",
            ),
        );
        // pytest sits in an optional group and in a PEP 735 group; the lower one is raised and
        // the one already at the target stays.
        FORMAT.assert_moves(
            PEP621,
            "pytest",
            "7.0",
            (">=6.2", ">=7.0"),
            (
                "\"lint\" }, \"pytest>=6.2\"]",
                "\"lint\" }, \"pytest>=7.0\"]",
            ),
        );
    }

    #[test]
    fn pep621_not_declared_satisfied_and_refused() {
        FORMAT.assert_satisfied(PEP621, &[("ruff", "0.0.9", "==0.1.0")]);
        // Build requirements, the project itself and tool tables are not dependencies.
        FORMAT.assert_not_declared(
            PEP621,
            &["setuptools", "acme-api", "acme_api", "lint", "flask"],
            "99.0",
        );
        let refusals = [
            ("cryptography", "41.0.0", "declares no version"),
            ("internal-lib", "1.1", "URL"),
        ];
        FORMAT.assert_refused(PEP621, &refusals);
        let excluded = "[project]\ndependencies = [\"Django>=3.2.18,!=4.2.0\"]\n";
        assert_eq!(
            FORMAT.reason(excluded, "django", "4.2.0"),
            "cannot bump `django` in pyproject.toml: the constraint `>=3.2.18,!=4.2.0` in \
             [project] dependencies is not bumped automatically: its exclusion `!=4.2.0` rules \
             out the fix 4.2.0 itself; remove it by hand if the fix is acceptable"
        );
    }

    #[test]
    fn pep621_widens_the_capped_ranges_from_the_issue() {
        let content = r#"[project]
name = "api"
version = "0.1.0"
dependencies = [
    "PyYAML>=5.3,<5.4",
    'starlette>=0.26.1,<0.27.0',  # fastapi 0.95 pins this
]
"#;
        FORMAT.assert_widens_the_issue_ranges(content);
        // The realistic file's major-capped Django moves to the next major window.
        FORMAT.assert_moves(
            PEP621,
            "django",
            "4.2.0",
            (">=3.2.18,<4.0", ">=4.2.0,<5.0"),
            ("\"Django>=3.2.18,<4.0\"", "\"Django>=4.2.0,<5.0\""),
        );
    }

    const POETRY: &str = r#"[tool.poetry]
name = "acme-worker"
version = "0.9.0"
description = "Background jobs"
authors = ["Acme <dev@acme.example>"]

[tool.poetry.dependencies]
python = "^3.9"
Django = "^3.2"          # LTS
celery = { version = "~5.2.3", extras = ["redis"] }
urllib3 = ">=1.26.5,<2"
pillow = "9.0.0"
numpy = [
    { version = ">=1.21,<1.25", python = "<3.9" },
    { version = "^1.25.0", python = ">=3.9" },
]
internal-lib = { path = "../internal-lib", develop = true }
legacy = { git = "https://github.com/acme/legacy.git", tag = "v1.0" }
anything = "*"

[tool.poetry.group.dev.dependencies]
pytest = "^7.1"
black = { version = "22.3.0", allow-prereleases = false }

[tool.poetry.dev-dependencies]
mypy = "~0.910"

[tool.poetry.dependencies.requests]
version = "^2.25"
extras = ["socks"]

[build-system]
requires = ["poetry-core>=1.0.0"]
build-backend = "poetry.core.masonry.api"
"#;

    #[test]
    fn bumps_poetry_caret_ranges_and_keeps_the_comment() {
        // Only the version changes: the comment, its alignment and every other line stay.
        FORMAT.assert_moves(
            POETRY,
            "django",
            "3.2.19",
            ("^3.2", "^3.2.19"),
            (
                "Django = \"^3.2\"          # LTS\n",
                "Django = \"^3.2.19\"          # LTS\n",
            ),
        );
    }

    #[test]
    fn every_poetry_table_and_form_is_bumped_in_place() {
        let cases = [
            (
                "celery",
                "5.2.7",
                r#"celery = { version = "~5.2.3", extras"#,
                r#"celery = { version = "~5.2.7", extras"#,
            ),
            (
                "urllib3",
                "1.26.18",
                "urllib3 = \">=1.26.5,<2\"",
                "urllib3 = \">=1.26.18,<2\"",
            ),
            (
                "pillow",
                "9.0.1",
                "pillow = \"9.0.0\"",
                "pillow = \"9.0.1\"",
            ),
            (
                "pytest",
                "7.2.0",
                "pytest = \"^7.1\"",
                "pytest = \"^7.2.0\"",
            ),
            (
                "black",
                "24.3.0",
                "black = { version = \"22.3.0\"",
                "black = { version = \"24.3.0\"",
            ),
            ("mypy", "0.971", "mypy = \"~0.910\"", "mypy = \"~0.971\""),
            (
                "requests",
                "2.31.0",
                "version = \"^2.25\"\nextras = [\"socks\"]",
                "version = \"^2.31.0\"\nextras = [\"socks\"]",
            ),
        ];
        FORMAT.assert_rewrites(POETRY, &cases);
    }

    #[test]
    fn poetry_refusals_and_python_is_not_a_package() {
        FORMAT.assert_not_declared(POETRY, &["python"], "3.12");
        FORMAT.assert_not_declared(POETRY, &["poetry-core"], "2.0");
        let refusals = [
            ("internal-lib", "2.0", "path dependency"),
            ("legacy", "2.0", "git dependency"),
            ("anything", "2.0", "wildcard"),
        ];
        FORMAT.assert_refused(POETRY, &refusals);
        let inclusive = "[tool.poetry.dependencies]\nstarlette = \">=0.26.1,<=0.26.9\"\n";
        FORMAT.assert_refused(
            inclusive,
            &[(
                "starlette",
                "0.27.0",
                "its bound `<=0.26.9` excludes 0.27.0, and a bound written with `<=`",
            )],
        );
    }

    #[test]
    fn poetry_widens_the_capped_ranges_from_the_issue() {
        let content = r#"[tool.poetry.dependencies]
python = "^3.10"
PyYAML = ">=5.3,<5.4"
starlette = { version = ">=0.26.1,<0.27.0", optional = true }
"#;
        FORMAT.assert_widens_the_issue_ranges(content);
    }

    #[test]
    fn poetry_widens_compatible_wildcard_and_tilde_constraints() {
        let cases = [
            ("PyYAML = \"~=5.3\"", "5.4", "PyYAML = \"~=5.4\"", false),
            ("PyYAML = \"~=5.3.1\"", "5.4", "PyYAML = \"~=5.4.0\"", true),
            ("PyYAML = \"==5.3.*\"", "5.4", "PyYAML = \"==5.4.*\"", true),
            ("PyYAML = \"~5.3.1\"", "5.4", "PyYAML = \"~5.4.0\"", true),
            ("PyYAML = \"^5.3\"", "6.0", "PyYAML = \"^6.0\"", true),
        ];
        for (before, target, after, widened) in cases {
            let content = format!("[tool.poetry.dependencies]\n{before}\n");
            match bump(&content, "pyyaml", target) {
                Ok(BumpOutcome::Bumped {
                    updated,
                    widened: was_widened,
                    ..
                }) => {
                    assert_eq!(updated, format!("[tool.poetry.dependencies]\n{after}\n"));
                    assert_eq!(was_widened, widened, "{before}");
                }
                other => panic!("{before}: {other:?}"),
            }
        }
    }

    #[test]
    fn poetry_multiple_constraints_widen_the_capped_entry() {
        // The old-Python entry caps below the fix and is widened; the other one is only raised,
        // and the widened one is what the outcome reports.
        assert_eq!(
            bump(POETRY, "numpy", "1.25.2"),
            Ok(BumpOutcome::Bumped {
                updated: POETRY.replace(
                    r#"    { version = ">=1.21,<1.25", python = "<3.9" },
    { version = "^1.25.0", python = ">=3.9" },"#,
                    r#"    { version = ">=1.25.2,<1.26", python = "<3.9" },
    { version = "^1.25.2", python = ">=3.9" },"#
                ),
                from: ">=1.21,<1.25".to_owned(),
                to: ">=1.25.2,<1.26".to_owned(),
                widened: true,
            })
        );
    }

    #[test]
    fn poetry_multiple_constraints_raise_each_entry_below_the_target() {
        FORMAT.assert_moves(
            POETRY,
            "numpy",
            "1.22.0",
            (">=1.21,<1.25", ">=1.22.0,<1.25"),
            (
                r#"{ version = ">=1.21,<1.25", python = "<3.9" }"#,
                r#"{ version = ">=1.22.0,<1.25", python = "<3.9" }"#,
            ),
        );
    }

    #[test]
    fn invalid_toml_is_a_parse_error() {
        FORMAT.assert_parse_error("pyproject.toml", "[project\ndependencies = []", "x", "1.0");
    }
}
