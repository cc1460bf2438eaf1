//! Version bump in pip requirements files: finds PEP 508 requirement lines for the package
//! (names compared the PEP 503 way), rewrites only the version specifier text, and leaves
//! comments, extras, environment markers, options (`-r`, `-e`, `--index-url`) and URL
//! requirements untouched.

use std::ops::Range;

use crate::patch::bump::constraint::{self, PEP440_OPERATORS, Rewrite, Separator, Syntax};
use crate::patch::bump::{BumpError, BumpOutcome, Declaration, ManifestKind, apply_rewrites};

const KIND: ManifestKind = ManifestKind::RequirementsTxt;

/// PEP 440 specifiers; a bare version is not valid there.
pub(super) const SYNTAX: Syntax = Syntax {
    separator: Separator::Comma,
    ops: &[PEP440_OPERATORS],
    bare: None,
};

/// Whether a PEP 440 specifier set (`>=1.0,<2`, empty for any) admits `version`; `None` when
/// either cannot be read, which is not a yes.
pub fn specifier_admits(specifier: &str, version: &str) -> Option<bool> {
    match specifier.trim() {
        "" | "*" => Some(true),
        specifier => constraint::admits(specifier, &SYNTAX, version),
    }
}

pub(super) fn bump(content: &str, package: &str, target: &str) -> Result<BumpOutcome, BumpError> {
    let wanted = pep503_name(package);
    let unsupported =
        |line: usize, reason: &str| KIND.unsupported(package, format!("line {line} {reason}"));

    let mut declarations = Vec::new();
    for logical in logical_lines(content) {
        let Some(requirement) = parse_line(content, logical.first.clone()) else {
            continue;
        };
        if pep503_name(requirement.name) != wanted {
            continue;
        }
        let line = logical.number;
        if requirement.url {
            return Err(unsupported(
                line,
                "installs the package from a URL; update the URL by hand",
            ));
        }
        if content[logical.whole.clone()].contains("--hash") {
            return Err(unsupported(
                line,
                "is pinned with --hash values that would no longer match; regenerate the file \
                 with its lock tool (e.g. `pip-compile --generate-hashes`)",
            ));
        }
        let Some(spec) = requirement.spec else {
            return Err(unsupported(
                line,
                "declares no version; the installed version is chosen elsewhere (a lock or \
                 constraints file)",
            ));
        };
        declarations.push(Declaration {
            span: spec,
            location: format!("line {line}"),
        });
    }

    apply_rewrites(KIND, content, package, &declarations, |_, current| {
        rewrite_specifier(current, target)
    })
}

/// Rewrites a PEP 440 specifier (`>=1.2,<2`) to require at least `target`, widening it when
/// its upper bound excludes the target; an error reason when it cannot be rewritten safely.
/// Shared with the PEP 621 lists of `pyproject.toml`.
pub(super) fn rewrite_specifier(current: &str, target: &str) -> Result<Rewrite, String> {
    if current.contains("===") {
        return Err("`===` is arbitrary string equality, not a version range".to_owned());
    }
    constraint::bump(current, &SYNTAX, target)
}

/// PEP 503 name normalisation: case-insensitive, runs of `-`, `_`, `.` are one `-`, so
/// `Foo_Bar.baz` and `foo-bar-baz` are one package (the lock step matches names this way too).
pub fn pep503_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.extend(c.to_lowercase());
            in_separator = false;
        }
    }
    out
}

/// A logical line: physical lines joined by trailing backslashes.
struct LogicalLine {
    /// 1-based number of its first physical line.
    number: usize,
    /// The first physical line, without its line break and continuation backslash.
    first: Range<usize>,
    /// All its physical lines.
    whole: Range<usize>,
}

fn logical_lines(content: &str) -> Vec<LogicalLine> {
    let mut out: Vec<LogicalLine> = Vec::new();
    let mut offset = 0;
    let mut continuing = false;
    for (index, raw) in content.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let text = raw.trim_end_matches(['\n', '\r']);
        let continues = text.ends_with('\\');
        let body_end = start + text.len() - usize::from(continues);
        match out.last_mut() {
            Some(last) if continuing => last.whole.end = offset,
            _ => out.push(LogicalLine {
                number: index + 1,
                first: start..body_end,
                whole: start..offset,
            }),
        }
        continuing = continues;
    }
    out
}

/// The parts of a requirement line the bump needs.
pub(super) struct Requirement<'a> {
    pub name: &'a str,
    /// `name @ url`.
    pub url: bool,
    /// Byte range of the version specifier in the whole content, if any.
    pub spec: Option<Range<usize>>,
}

/// Reads a PEP 508 requirement from one physical line; `None` for blank lines, comments,
/// options and bare URLs or paths. Also reads the PEP 508 strings of `pyproject.toml`.
pub(super) fn parse_line(content: &str, line: Range<usize>) -> Option<Requirement<'_>> {
    let text = &content[line.clone()];
    // pip starts a comment at `#` at the line start or after whitespace.
    let comment = text
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || text[..i].ends_with(char::is_whitespace)))
        .map_or(text.len(), |(i, _)| i);
    let body = &text[..comment];

    let name_start = body.len() - body.trim_start().len();
    let name_len = body[name_start..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(body.len() - name_start);
    let name = &body[name_start..name_start + name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        // Options (`-r`, `-e`, `--index-url`), paths (`./pkg`) and blank lines.
        return None;
    }
    let mut pos = name_start + name_len;
    let after_name = body[pos..].trim_start();
    if after_name.starts_with(':') {
        // `https://...`, `git+https://...` read as a "name" followed by a scheme.
        return None;
    }
    if after_name.starts_with('+') {
        return None;
    }
    pos = body.len() - after_name.len();

    if let Some(extras) = after_name.strip_prefix('[') {
        let close = extras.find(']')?;
        pos += 1 + close + 1;
    }
    let rest = &body[pos..];
    let marker = rest.find(';').unwrap_or(rest.len());
    let options = rest
        .find(" --")
        .or_else(|| rest.find("\t--"))
        .unwrap_or(rest.len());
    let spec_end = pos + marker.min(options);
    let mut spec = pos..spec_end;
    let spec_text = body[spec.clone()].trim();
    if spec_text.starts_with('@') {
        return Some(Requirement {
            name,
            url: true,
            spec: None,
        });
    }
    if spec_text.is_empty() {
        return Some(Requirement {
            name,
            url: false,
            spec: None,
        });
    }
    // Trim, and drop the parentheses of the old `name (>=1.0)` form.
    let leading = body[spec.clone()].len() - body[spec.clone()].trim_start().len();
    spec = spec.start + leading..spec.start + leading + spec_text.len();
    if spec_text.starts_with('(') && spec_text.ends_with(')') {
        spec = spec.start + 1..spec.end - 1;
    }
    Some(Requirement {
        name,
        url: false,
        spec: Some(line.start + spec.start..line.start + spec.end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::bump::test_support::Format;

    const FORMAT: Format = Format(bump);

    const REALISTIC: &str = "\
# Production dependencies for the API service.
# Keep sorted; see CONTRIBUTING.md.
-r requirements/base.txt
--index-url http://127.0.0.1:3141/simple

Django==3.2.18  # LTS
djangorestframework>=3.12,<3.15
requests[socks,security] ~= 2.25.1
urllib3>=1.26.5 ; python_version >= \"3.7\"
importlib-metadata==4.8.3; python_version<\"3.8\"
PyYAML>=5.4
cryptography
-e git+https://github.com/acme/internal-lib.git@v1.2#egg=internal-lib
pillow @ https://example.com/wheels/Pillow-9.0.0-cp311-cp311-linux_x86_64.whl
https://example.com/wheels/other-1.0.tar.gz
Jinja2 == 2.11.3 \\
    ; python_version >= \"3.6\"
";

    #[test]
    fn bumps_an_exact_pin_and_keeps_the_comment() {
        // Only the version changes: the comment and every other line stay.
        FORMAT.assert_moves(
            REALISTIC,
            "django",
            "3.2.19",
            ("==3.2.18", "==3.2.19"),
            ("\nDjango==3.2.18  # LTS\n", "\nDjango==3.2.19  # LTS\n"),
        );
    }

    #[test]
    fn keeps_operators_extras_markers_and_spacing() {
        let cases = [
            (
                "djangorestframework",
                "3.14.0",
                "djangorestframework>=3.12,<3.15",
                "djangorestframework>=3.14.0,<3.15",
            ),
            (
                "requests",
                "2.31.0",
                "requests[socks,security] ~= 2.25.1",
                "requests[socks,security] ~= 2.31.0",
            ),
            (
                "urllib3",
                "1.26.18",
                "urllib3>=1.26.5 ; python_version",
                "urllib3>=1.26.18 ; python_version",
            ),
            (
                "importlib_metadata",
                "4.8.4",
                "importlib-metadata==4.8.3;",
                "importlib-metadata==4.8.4;",
            ),
            ("pyyaml", "5.4.1", "PyYAML>=5.4\n", "PyYAML>=5.4.1\n"),
            (
                "jinja2",
                "2.11.3.post1",
                "Jinja2 == 2.11.3 \\",
                "Jinja2 == 2.11.3.post1 \\",
            ),
        ];
        FORMAT.assert_rewrites(REALISTIC, &cases);
    }

    #[test]
    fn names_are_compared_the_pep_503_way() {
        assert_eq!(pep503_name("Importlib_Metadata"), "importlib-metadata");
        assert_eq!(pep503_name("zope..interface"), "zope-interface");
        assert!(matches!(
            bump(REALISTIC, "IMPORTLIB.METADATA", "4.8.4"),
            Ok(BumpOutcome::Bumped { .. })
        ));
    }

    #[test]
    fn every_marker_variant_of_a_package_is_bumped_when_below_target() {
        let content =
            "numpy==1.21.6; python_version<\"3.8\"\nnumpy==1.24.0; python_version>=\"3.8\"\n";
        FORMAT.assert_bumps_to(
            content,
            "numpy",
            "1.22.0",
            ("==1.21.6", "==1.22.0"),
            "numpy==1.22.0; python_version<\"3.8\"\nnumpy==1.24.0; python_version>=\"3.8\"\n",
        );
    }

    #[test]
    fn already_satisfied_and_not_declared() {
        FORMAT.assert_satisfied(REALISTIC, &[("pyyaml", "5.1", ">=5.4")]);
        // Names in comments, options and URLs are not declarations.
        FORMAT.assert_not_declared(
            REALISTIC,
            &["internal-lib", "other", "base", "sorted", "pypi"],
            "9.9.9",
        );
    }

    #[test]
    fn hashes_urls_and_unversioned_lines_are_refused() {
        let hashed = "flask==2.2.2 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb\nclick==8.1.3 --hash=sha256:cccc\n";
        FORMAT.assert_refused(
            hashed,
            &[("flask", "2.2.5", "--hash"), ("click", "8.1.4", "line 4")],
        );
        let refusals = [
            ("pillow", "9.0.1", "URL"),
            ("cryptography", "41.0.0", "declares no version"),
        ];
        FORMAT.assert_refused(REALISTIC, &refusals);
        FORMAT.assert_refused("pkg===1.0\n", &[("pkg", "1.1", "arbitrary")]);
    }

    #[test]
    fn widens_the_capped_ranges_from_the_issue() {
        let content = "\
# API service
PyYAML>=5.3,<5.4
starlette>=0.26.1,<0.27.0  # via fastapi
";
        FORMAT.assert_widens_the_issue_ranges(content);
    }

    #[test]
    fn widens_compatible_wildcard_and_spaced_ranges_in_place() {
        let cases = [
            (
                "djangorestframework",
                "3.15.1",
                "djangorestframework>=3.12,<3.15",
                "djangorestframework>=3.15.1,<3.16",
            ),
            // `~= 2.25.1` is the 2.25 patch releases; the fix opens the 2.31 ones.
            (
                "requests",
                "2.31.0",
                "requests[socks,security] ~= 2.25.1",
                "requests[socks,security] ~= 2.31.0",
            ),
        ];
        FORMAT.assert_rewrites(REALISTIC, &cases);
        FORMAT.assert_updates(&[
            ("pkg==1.2.*\n", "pkg", "1.3", "pkg==1.3.*\n"),
            (
                "PyYAML >= 5.3 , < 5.4 ; python_version >= \"3.8\"\r\n",
                "pyyaml",
                "5.4",
                "PyYAML >= 5.4 , < 5.5 ; python_version >= \"3.8\"\r\n",
            ),
        ]);
    }

    #[test]
    fn ranges_that_cannot_keep_their_shape_are_refused() {
        assert_eq!(
            FORMAT.reason("pkg>=1.2,!=1.3\n", "pkg", "1.3"),
            "cannot bump `pkg` in requirements.txt: the constraint `>=1.2,!=1.3` in line 1 is \
             not bumped automatically: its exclusion `!=1.3` rules out the fix 1.3 itself; \
             remove it by hand if the fix is acceptable"
        );
        FORMAT.assert_refused(
            "pkg>=1.2,<=1.2.9\n",
            &[(
                "pkg",
                "1.3",
                "`<=1.2.9` excludes 1.3, and a bound written with `<=`",
            )],
        );
        let wildcard_refusals = [
            ("pkg", "1.2.4", "wildcard cannot start"),
            ("pkg", "1.3.1", "`==1.2.*` excludes 1.3.1"),
        ];
        FORMAT.assert_refused("pkg==1.2.*\n", &wildcard_refusals);
    }

    #[test]
    fn crlf_old_style_parentheses_and_no_trailing_newline() {
        FORMAT.assert_updates(&[
            (
                "a==1.0\r\nsix (>=1.10)\r\nb==2.0",
                "six",
                "1.16.0",
                "a==1.0\r\nsix (>=1.16.0)\r\nb==2.0",
            ),
            ("b==2.0", "b", "2.1", "b==2.1"),
        ]);
    }

    #[test]
    fn comment_only_after_whitespace() {
        // `#` inside a requirement without whitespace before it is not a comment (it would be
        // invalid anyway); with whitespace it is.
        let content = "lxml>=4.6.2 #fixes CVE-2021-28957\n";
        FORMAT.assert_updates(&[(
            content,
            "lxml",
            "4.9.1",
            "lxml>=4.9.1 #fixes CVE-2021-28957\n",
        )]);
    }
}
