//! Version bump in `go.mod`: finds the module's `require` (single line or inside a
//! `require ( ... )` block) and rewrites its `vX.Y.Z` version in place, keeping comments,
//! alignment and a `+incompatible` suffix. A require version is a minimum under Go's minimal
//! version selection, so raising it to the fixed version is the whole fix in this file (go.sum
//! still needs `go mod tidy`, as a lock file would).
//!
//! Left alone: `// indirect` requires (the module is not a direct dependency; reported as not
//! declared) and modules named in a `replace` directive (the require version is then not what
//! is built), which are refused with the reason.

use std::ops::Range;

use crate::patch::bump::constraint::Rewrite;
use crate::patch::bump::version::Version;
use crate::patch::bump::{BumpError, BumpOutcome, Declaration, ManifestKind, apply_rewrites};

const KIND: ManifestKind = ManifestKind::GoMod;

pub(super) fn bump(content: &str, package: &str, target: &str) -> Result<BumpOutcome, BumpError> {
    let found = requirements(content, package)?;
    if let (Some(replace), true) = (found.replaced_on, found.required) {
        return Err(KIND.unsupported(package, replaced_reason(replace)));
    }
    apply_rewrites(KIND, content, package, &found.declarations, |_, current| {
        rewrite(package, current, target).map(Rewrite::pinned)
    })
}

/// What go.mod says about one module.
struct Requirements {
    /// Its direct (not `// indirect`) requires.
    declarations: Vec<Declaration>,
    /// Whether any require names it, indirect or not.
    required: bool,
    /// The first `replace` naming it: its line, and whether the module is the one replaced
    /// (rather than the replacement).
    replaced_on: Option<(usize, bool)>,
}

fn requirements(content: &str, package: &str) -> Result<Requirements, BumpError> {
    let mut found = Requirements {
        declarations: Vec::new(),
        required: false,
        replaced_on: None,
    };
    for directive in directives(content) {
        let directive = directive?;
        let text = |i: usize| directive.text(content, i);
        let (args, number) = (directive.args, directive.number);
        match directive.verb.as_str() {
            "require" if text(args) == Some(package) => {
                found.required = true;
                if directive.is_indirect(content) {
                    // Only required for another dependency: not ours to pin here.
                    continue;
                }
                let version = directive.tokens.get(args + 1).ok_or_else(|| {
                    KIND.parse_error(format!("line {number}: `require {package}` has no version"))
                })?;
                found.declarations.push(Declaration {
                    span: unquoted_span(content, version.clone()),
                    location: format!("the require on line {number}"),
                });
            }
            "replace" => {
                let arrow = (args..directive.tokens.len()).find(|&i| text(i) == Some("=>"));
                let replaces = text(args) == Some(package);
                let replacement = arrow.is_some_and(|arrow| text(arrow + 1) == Some(package));
                if (replaces || replacement) && found.replaced_on.is_none() {
                    found.replaced_on = Some((number, replaces));
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Why a module named by a `replace` (on `line`; `replaces` when it is the module replaced)
/// is not bumped: the require version would not be what is built.
fn replaced_reason((line, replaces): (usize, bool)) -> String {
    if replaces {
        format!(
            "it is replaced by the `replace` directive on line {line}, so the required \
             version is not the one that is built; update the replace directive by hand"
        )
    } else {
        format!(
            "it is also built as the replacement of another module (`replace` on line \
             {line}), a copy the require does not govern; update the replace directive by \
             hand"
        )
    }
}

/// One directive line of go.mod. Inside a `require ( ... )` block the verb is the block's,
/// not repeated on the line, so the arguments start at token 0 there and at 1 elsewhere.
struct Directive {
    /// 1-based line number.
    number: usize,
    verb: String,
    tokens: Vec<Range<usize>>,
    /// The index of the first argument in `tokens`.
    args: usize,
    /// The text after `//`.
    comment: Option<Range<usize>>,
}

impl Directive {
    /// The text of token `i`, without quotes.
    fn text<'a>(&self, content: &'a str, i: usize) -> Option<&'a str> {
        self.tokens
            .get(i)
            .map(|token| unquote(&content[token.clone()]))
    }

    /// Whether the line is marked `// indirect` (possibly followed by `; more comment`).
    fn is_indirect(&self, content: &str) -> bool {
        self.comment.clone().is_some_and(|comment| {
            let comment = content[comment].trim();
            comment == "indirect" || comment.starts_with("indirect;")
        })
    }
}

/// The directives of go.mod in order, with block openers and closers consumed; a line that
/// does not tokenise is an error in its place.
fn directives(content: &str) -> impl Iterator<Item = Result<Directive, BumpError>> + '_ {
    let mut block: Option<String> = None;
    lines(content).filter_map(move |(index, line)| {
        let number = index + 1;
        let Tokens { tokens, comment } = match tokenise(content, line) {
            Ok(tokens) => tokens,
            Err(detail) => return Some(Err(KIND.parse_error(format!("line {number}: {detail}")))),
        };
        let text = |i: usize| {
            tokens
                .get(i)
                .map(|token: &Range<usize>| unquote(&content[token.clone()]))
        };
        let (verb, args) = match (&block, text(0)) {
            (_, None) => return None,
            (Some(_), Some(")")) => {
                block = None;
                return None;
            }
            (Some(verb), Some(_)) => (verb.clone(), 0),
            (None, Some(verb)) if text(1) == Some("(") && tokens.len() == 2 => {
                block = Some(verb.to_owned());
                return None;
            }
            (None, Some(verb)) => (verb.to_owned(), 1),
        };
        Some(Ok(Directive {
            number,
            verb,
            tokens,
            args,
            comment,
        }))
    })
}

/// The new version text for a require of `path` at `current`, `None` when it is already at
/// or above the target.
fn rewrite(path: &str, current: &str, target: &str) -> Result<Option<String>, String> {
    let current_version = current
        .strip_prefix('v')
        .and_then(Version::parse)
        .ok_or_else(|| "it is not a Go module version (`vX.Y.Z`)".to_owned())?;
    let target_version =
        Version::parse(target).ok_or_else(|| format!("`{target}` is not a version"))?;
    if current_version >= target_version {
        return Ok(None);
    }
    let Some(major) = semver_major(target) else {
        return Err(format!(
            "the fixed version `{target}` is not a full semantic version (MAJOR.MINOR.PATCH), \
             which go.mod requires"
        ));
    };
    let incompatible = current.ends_with("+incompatible") || target.ends_with("+incompatible");
    match path_major(path) {
        Some(path_major) if path_major != major => {
            return Err(format!(
                "the fix v{target} is major version {major} but the module path `{path}` is \
                 major version {path_major}; change the module path in go.mod and the imports \
                 by hand"
            ));
        }
        None if major >= 2 && !incompatible => {
            return Err(format!(
                "the fix v{target} is major version {major}, which Go imports as the module \
                 `{path}/v{major}`; change the module path in go.mod and the imports by hand"
            ));
        }
        _ => {}
    }
    let mut new = format!("v{target}");
    if current.ends_with("+incompatible") && !target.ends_with("+incompatible") {
        new.push_str("+incompatible");
    }
    Ok(Some(new))
}

/// The major version of a canonical semantic version (`1.4.0`, `2.0.0-rc.1`, `1.4.0+meta`).
fn semver_major(version: &str) -> Option<u64> {
    let core = version.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return None;
    }
    parts[0].parse().ok()
}

/// The major version a module path pins: `/v2` and up, or gopkg.in's `.vN`. `None` for a
/// path that admits v0 and v1 only.
fn path_major(path: &str) -> Option<u64> {
    let last = path.rsplit('/').next()?;
    if path.starts_with("gopkg.in/") {
        let (_, major) = last.rsplit_once(".v")?;
        return major.parse().ok();
    }
    let major: u64 = last.strip_prefix('v')?.parse().ok()?;
    (major >= 2 && path.contains('/')).then_some(major)
}

/// Lines with their index, without line breaks.
fn lines(content: &str) -> impl Iterator<Item = (usize, Range<usize>)> + '_ {
    let mut offset = 0;
    content
        .split_inclusive('\n')
        .enumerate()
        .map(move |(index, raw)| {
            let start = offset;
            offset += raw.len();
            let text = raw.trim_end_matches(['\n', '\r']);
            (index, start..start + text.len())
        })
}

/// A go.mod line split into tokens: `(`, `)` and `=>` stand alone; strings stay whole, with
/// their quotes.
struct Tokens {
    tokens: Vec<Range<usize>>,
    /// The text after `//`.
    comment: Option<Range<usize>>,
}

fn tokenise(content: &str, line: Range<usize>) -> Result<Tokens, String> {
    let bytes = content.as_bytes();
    let mut tokens = Vec::new();
    let mut i = line.start;
    while i < line.end {
        let byte = bytes[i];
        if byte.is_ascii_whitespace() {
            i += 1;
        } else if content[i..line.end].starts_with("//") {
            return Ok(Tokens {
                tokens,
                comment: Some(i + 2..line.end),
            });
        } else if byte == b'"' || byte == b'`' {
            let mut end = i + 1;
            while end < line.end && bytes[end] != byte {
                end += if byte == b'"' && bytes[end] == b'\\' {
                    2
                } else {
                    1
                };
            }
            if end >= line.end {
                return Err("unterminated string".to_owned());
            }
            tokens.push(i..end + 1);
            i = end + 1;
        } else if byte == b'(' || byte == b')' {
            tokens.push(i..i + 1);
            i += 1;
        } else if content[i..line.end].starts_with("=>") {
            tokens.push(i..i + 2);
            i += 2;
        } else {
            let start = i;
            while i < line.end
                && !bytes[i].is_ascii_whitespace()
                && !matches!(bytes[i], b'(' | b')' | b'"' | b'`')
                && !content[i..line.end].starts_with("=>")
                && !content[i..line.end].starts_with("//")
            {
                i += 1;
            }
            tokens.push(start..i);
        }
    }
    Ok(Tokens {
        tokens,
        comment: None,
    })
}

/// A token's text without the quotes of a quoted string (go.mod paths never need escapes).
fn unquote(token: &str) -> &str {
    unquoted(token).unwrap_or(token)
}

fn unquoted_span(content: &str, token: Range<usize>) -> Range<usize> {
    match unquoted(&content[token.clone()]) {
        Some(_) => token.start + 1..token.end - 1,
        None => token,
    }
}

fn unquoted(token: &str) -> Option<&str> {
    ['"', '`']
        .into_iter()
        .find_map(|quote| token.strip_prefix(quote)?.strip_suffix(quote))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::bump::test_support::Format;

    const FORMAT: Format = Format(bump);

    const REALISTIC: &str = "\
module github.com/acme/inventory

go 1.21

toolchain go1.21.5

require github.com/gin-gonic/gin v1.9.0 // web framework

require (
\tgithub.com/docker/docker v20.10.7+incompatible
\tgithub.com/jackc/pgx/v5 v5.4.3
\tgolang.org/x/crypto v0.14.0 // CVE tracking: keep >= 0.14
\tgopkg.in/yaml.v3 v3.0.0
\tgoogle.golang.org/grpc v1.56.3
)

require (
\tgithub.com/bytedance/sonic v1.9.1 // indirect
\tgolang.org/x/net v0.17.0 // indirect
\tgolang.org/x/sys v0.13.0 // indirect
)

replace github.com/acme/shared => ../shared

replace (
\tgoogle.golang.org/grpc v1.56.3 => google.golang.org/grpc v1.56.4
)

exclude golang.org/x/text v0.3.7
";

    #[test]
    fn bumps_a_require_inside_a_block_and_keeps_comments() {
        // Only the version changes: the comment, the tab and every other line stay.
        FORMAT.assert_moves(
            REALISTIC,
            "golang.org/x/crypto",
            "0.17.0",
            ("v0.14.0", "v0.17.0"),
            (
                "\tgolang.org/x/crypto v0.14.0 // CVE tracking: keep >= 0.14\n",
                "\tgolang.org/x/crypto v0.17.0 // CVE tracking: keep >= 0.14\n",
            ),
        );
    }

    #[test]
    fn a_require_is_a_minimum_version_so_it_is_never_widened() {
        // go.mod has no ranges: a require is the minimum the build selects, so the bump only
        // raises it, and the outcome says no range was widened.
        let content = "module example.com/app\n\nrequire github.com/gin-gonic/gin v1.9.0\n";
        assert_eq!(
            bump(content, "github.com/gin-gonic/gin", "1.9.1"),
            Ok(BumpOutcome::Bumped {
                updated: "module example.com/app\n\nrequire github.com/gin-gonic/gin v1.9.1\n"
                    .to_owned(),
                from: "v1.9.0".to_owned(),
                to: "v1.9.1".to_owned(),
                widened: false,
            })
        );
    }

    #[test]
    fn bumps_single_line_requires_major_paths_and_incompatible_versions() {
        let cases = [
            (
                "github.com/gin-gonic/gin",
                "1.9.1",
                "gin v1.9.0 // web",
                "gin v1.9.1 // web",
            ),
            (
                "github.com/jackc/pgx/v5",
                "5.5.4",
                "pgx/v5 v5.4.3",
                "pgx/v5 v5.5.4",
            ),
            (
                "gopkg.in/yaml.v3",
                "3.0.1",
                "yaml.v3 v3.0.0",
                "yaml.v3 v3.0.1",
            ),
            (
                "github.com/docker/docker",
                "20.10.11",
                "v20.10.7+incompatible",
                "v20.10.11+incompatible",
            ),
            (
                "github.com/docker/docker",
                "20.10.27+incompatible",
                "v20.10.7+incompatible",
                "v20.10.27+incompatible",
            ),
        ];
        FORMAT.assert_rewrites(REALISTIC, &cases);
    }

    #[test]
    fn indirect_requires_are_left_alone() {
        FORMAT.assert_not_declared(
            REALISTIC,
            &[
                "golang.org/x/net",
                "golang.org/x/sys",
                "github.com/bytedance/sonic",
            ],
            "9.9.9",
        );
    }

    #[test]
    fn replaced_modules_are_refused() {
        let grpc = FORMAT.reason(REALISTIC, "google.golang.org/grpc", "1.58.3");
        assert_eq!(
            grpc,
            "cannot bump `google.golang.org/grpc` in go.mod: it is replaced by the `replace` \
             directive on line 26, so the required version is not the one that is built; update \
             the replace directive by hand"
        );
        let local = "module example.com/app\n\ngo 1.20\n\nrequire example.com/lib v1.2.3\n\nreplace example.com/lib => ../lib\n";
        FORMAT.assert_refused(local, &[("example.com/lib", "1.2.4", "line 7")]);
        let as_target = "module example.com/app\n\nrequire (\n\tgithub.com/old/yaml v1.0.0\n\tgithub.com/new/yaml v1.1.0\n)\n\nreplace github.com/old/yaml => github.com/new/yaml v1.1.0\n";
        FORMAT.assert_refused(
            as_target,
            &[("github.com/new/yaml", "1.1.1", "replacement")],
        );
    }

    #[test]
    fn module_paths_match_exactly() {
        FORMAT.assert_not_declared(
            REALISTIC,
            &[
                "github.com/Gin-Gonic/gin",
                "github.com/jackc/pgx",
                "golang.org/x/crypto/ssh",
                "github.com/acme/inventory",
                "golang.org/x/text",
                "github.com/acme/shared",
                "stdlib",
            ],
            "9.9.9",
        );
    }

    #[test]
    fn satisfied_and_unbumpable_versions() {
        FORMAT.assert_satisfied(REALISTIC, &[("golang.org/x/crypto", "0.14.0", "v0.14.0")]);
        let refusals = [
            (
                "github.com/gin-gonic/gin",
                "2.0.0",
                "`github.com/gin-gonic/gin/v2`",
            ),
            ("github.com/jackc/pgx/v5", "6.0.0", "major version 5"),
            ("github.com/gin-gonic/gin", "1.10", "MAJOR.MINOR.PATCH"),
        ];
        FORMAT.assert_refused(REALISTIC, &refusals);
    }

    #[test]
    fn pseudo_versions_and_quoted_paths() {
        let content = "module example.com/app\r\n\r\nrequire (\r\n\t\"golang.org/x/image\" v0.0.0-20210220032944-ac19c3e999fb\r\n)\r\n";
        FORMAT.assert_bumps_to(
            content,
            "golang.org/x/image",
            "0.5.0",
            ("v0.0.0-20210220032944-ac19c3e999fb", "v0.5.0"),
            "module example.com/app\r\n\r\nrequire (\r\n\t\"golang.org/x/image\" v0.5.0\r\n)\r\n",
        );
        let (updated, _, _) = FORMAT.bumped(
            content,
            "golang.org/x/image",
            "0.0.0-20220302094943-723b81ca9867",
        );
        assert!(updated.contains("\" v0.0.0-20220302094943-723b81ca9867\r\n"));
    }

    #[test]
    fn unterminated_strings_are_a_parse_error() {
        FORMAT.assert_parse_error(
            "go.mod",
            "require \"example.com/x v1.0.0\n",
            "example.com/x",
            "1.0.1",
        );
    }
}
