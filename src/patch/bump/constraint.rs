//! Version constraints as the manifest formats write them (`^1.2`, `>=1.2, <2`, `==1.2.3`,
//! `~=1.2`), parsed into comparators with their positions so a bump can rewrite just the version
//! text and keep the user's operator, spacing and separators.

use std::ops::Range;

use crate::patch::bump::version::Version;

/// A comparison operator. Each format maps its own spelling onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `^1.2` (and Cargo's bare `1.2`): at least 1.2, same leftmost non-zero component.
    Caret,
    /// `~1.2`: at least 1.2, same minor.
    Tilde,
    /// `=1.2.3`, `==1.2.3`, npm's bare `1.2.3`.
    Exact,
    /// PEP 440 `~=1.2`: at least 1.2, same prefix.
    Compatible,
    Ge,
    Gt,
    Le,
    Lt,
    Ne,
}

impl Op {
    /// Whether the comparator sets a lower bound (every admitted version is >= its version).
    fn is_lower_bound(self) -> bool {
        matches!(
            self,
            Self::Caret | Self::Tilde | Self::Exact | Self::Compatible | Self::Ge | Self::Gt
        )
    }
}

/// One comparator of a constraint, with byte ranges into the constraint text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comparator {
    pub op: Op,
    /// The operator as written (empty for a bare version).
    pub op_span: Range<usize>,
    pub version_span: Range<usize>,
}

/// How comparators are separated in a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Separator {
    /// Cargo and PEP 508: `>=1.2, <2`.
    Comma,
    /// npm: `>=1.2.0 <2.0.0`; an operator may stand apart from its version (`>= 1.2.0`).
    Whitespace,
}

/// The operator spellings of a format, longest first, and what a bare version means.
pub(crate) struct Syntax {
    pub separator: Separator,
    pub ops: &'static [(&'static str, Op)],
    pub bare: Option<Op>,
}

/// What a bump makes of a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// Every version the constraint admits is already >= the target.
    Satisfied,
    /// The constraint rewritten to require at least the target.
    Updated(String),
}

/// Splits `constraint` into comparators. Errors are reasons a person can act on.
pub(crate) fn parse(constraint: &str, syntax: &Syntax) -> Result<Vec<Comparator>, String> {
    let segments: Vec<Range<usize>> = match syntax.separator {
        Separator::Comma => {
            let mut start = 0;
            let mut out = Vec::new();
            for part in constraint.split(',') {
                out.push(trimmed(constraint, start..start + part.len()));
                start += part.len() + 1;
            }
            out
        }
        Separator::Whitespace => {
            let tokens = tokens(constraint);
            let mut out = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                let token = &constraint[tokens[i].clone()];
                let lone_op = syntax.ops.iter().any(|(spelling, _)| *spelling == token);
                match tokens.get(i + 1) {
                    Some(next) if lone_op => {
                        out.push(tokens[i].start..next.end);
                        i += 2;
                    }
                    _ => {
                        out.push(tokens[i].clone());
                        i += 1;
                    }
                }
            }
            out
        }
    };

    let mut comparators = Vec::new();
    for segment in segments {
        let text = &constraint[segment.clone()];
        if text.is_empty() {
            return Err("it has an empty comparator".to_owned());
        }
        if text == "||" || text.contains("||") {
            return Err("it is a union of ranges (`||`)".to_owned());
        }
        if text == "-" {
            return Err("it is a hyphen range (`a - b`)".to_owned());
        }
        let found = syntax
            .ops
            .iter()
            .find(|(spelling, _)| text.starts_with(spelling));
        let (op, op_len) = match (found, syntax.bare) {
            (Some((spelling, op)), _) => (*op, spelling.len()),
            (None, Some(bare)) => (bare, 0),
            (None, None) => {
                return Err(format!("`{text}` has no comparison operator"));
            }
        };
        let op_span = segment.start..segment.start + op_len;
        let version_span = trimmed(constraint, op_span.end..segment.end);
        let version = &constraint[version_span.clone()];
        if version.is_empty() || version.contains(char::is_whitespace) {
            return Err(format!(
                "`{text}` is not an operator followed by one version"
            ));
        }
        if is_wildcard(version) {
            return Err(format!("`{text}` is a wildcard"));
        }
        if Version::parse(version).is_none() {
            return Err(format!("`{version}` is not a version"));
        }
        comparators.push(Comparator {
            op,
            op_span,
            version_span,
        });
    }
    Ok(comparators)
}

/// Rewrites `constraint` so that it requires at least `target`, keeping every operator (a
/// strict `>` becomes `>=`, since `>target` would exclude the fix itself) and all spacing.
pub(crate) fn rewrite(
    constraint: &str,
    comparators: &[Comparator],
    target_text: &str,
) -> Result<Rewrite, String> {
    let target =
        Version::parse(target_text).ok_or_else(|| format!("`{target_text}` is not a version"))?;
    let version_of = |comparator: &Comparator| {
        Version::parse(&constraint[comparator.version_span.clone()])
            .ok_or_else(|| "a comparator has no version".to_owned())
    };

    let mut lowest_admitted: Option<Version> = None;
    for comparator in comparators.iter().filter(|c| c.op.is_lower_bound()) {
        let version = version_of(comparator)?;
        if lowest_admitted
            .as_ref()
            .is_none_or(|lowest| version > *lowest)
        {
            lowest_admitted = Some(version);
        }
    }
    let Some(lowest_admitted) = lowest_admitted else {
        return Err(
            "it sets no lower bound, so the installed version is chosen elsewhere \
                    (a lock or constraints file)"
                .to_owned(),
        );
    };
    if lowest_admitted >= target {
        return Ok(Rewrite::Satisfied);
    }

    for comparator in comparators {
        let version = version_of(comparator)?;
        let written = &constraint[comparator.op_span.start..comparator.version_span.end];
        let excludes = match comparator.op {
            Op::Lt => target >= version,
            Op::Le => target > version,
            Op::Ne => target == version,
            _ => false,
        };
        if excludes {
            return Err(format!(
                "its bound `{written}` excludes {target_text}; widen the range by hand"
            ));
        }
    }

    let mut updated = constraint.to_owned();
    // Back to front, so earlier ranges stay valid.
    for comparator in comparators.iter().rev() {
        if !comparator.op.is_lower_bound() {
            continue;
        }
        updated.replace_range(comparator.version_span.clone(), target_text);
        if comparator.op == Op::Gt {
            updated.replace_range(comparator.op_span.clone(), ">=");
        }
    }
    Ok(Rewrite::Updated(updated))
}

/// `*`, `1.*`, `1.x`, `1.2.X`: ranges written as patterns rather than bounds.
fn is_wildcard(version: &str) -> bool {
    version
        .split('.')
        .any(|part| matches!(part, "*" | "x" | "X"))
}

fn trimmed(text: &str, range: Range<usize>) -> Range<usize> {
    let slice = &text[range.clone()];
    let start = range.start + (slice.len() - slice.trim_start().len());
    let end = range.end - (slice.len() - slice.trim_end().len());
    start..end.max(start)
}

fn tokens(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARGO: Syntax = Syntax {
        separator: Separator::Comma,
        ops: &[
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Exact),
            ("^", Op::Caret),
            ("~", Op::Tilde),
        ],
        bare: Some(Op::Caret),
    };

    const NPM: Syntax = Syntax {
        separator: Separator::Whitespace,
        ops: CARGO.ops,
        bare: Some(Op::Exact),
    };

    fn bump(constraint: &str, syntax: &Syntax, target: &str) -> Result<Rewrite, String> {
        let comparators = parse(constraint, syntax)?;
        rewrite(constraint, &comparators, target)
    }

    fn updated(text: &str) -> Result<Rewrite, String> {
        Ok(Rewrite::Updated(text.to_owned()))
    }

    #[test]
    fn single_comparators_keep_their_operator() {
        assert_eq!(bump("^1.2.3", &CARGO, "1.4.0"), updated("^1.4.0"));
        assert_eq!(bump("~1.2.3", &CARGO, "1.4.0"), updated("~1.4.0"));
        assert_eq!(bump(">=1.2", &CARGO, "1.4.0"), updated(">=1.4.0"));
        assert_eq!(bump("=1.2.3", &CARGO, "1.4.0"), updated("=1.4.0"));
        assert_eq!(bump("1.2", &CARGO, "1.4.0"), updated("1.4.0"));
        assert_eq!(bump("> 1.2", &CARGO, "1.4.0"), updated(">= 1.4.0"));
    }

    #[test]
    fn compound_ranges_move_the_lower_bound_and_keep_the_upper() {
        assert_eq!(bump(">=1.2, <2", &CARGO, "1.4.0"), updated(">=1.4.0, <2"));
        assert_eq!(
            bump(">= 1.2.0  < 2.0.0", &NPM, "1.4.0"),
            updated(">= 1.4.0  < 2.0.0")
        );
    }

    #[test]
    fn upper_bounds_that_exclude_the_target_are_refused() {
        let error = bump(">=1.2, <1.4", &CARGO, "1.4.0").expect_err("<1.4 excludes 1.4.0");
        assert!(error.contains("`<1.4` excludes 1.4.0"), "{error}");
        assert!(bump(">=1.2, <=1.3.9", &CARGO, "1.4.0").is_err());
        assert!(bump(">=1.2, <=1.4.0", &CARGO, "1.4.0").is_ok());
    }

    #[test]
    fn constraints_already_at_or_above_target_are_satisfied() {
        assert_eq!(bump(">=2.0", &CARGO, "1.4.0"), Ok(Rewrite::Satisfied));
        assert_eq!(bump("^1.4", &CARGO, "1.4.0"), Ok(Rewrite::Satisfied));
        assert_eq!(bump(">1.4.0", &CARGO, "1.4.0"), Ok(Rewrite::Satisfied));
        assert_eq!(bump("1.5.0", &NPM, "1.4.0"), Ok(Rewrite::Satisfied));
    }

    #[test]
    fn unbounded_wildcard_and_union_ranges_are_refused() {
        assert!(
            bump("<2", &CARGO, "1.4.0")
                .expect_err("no lower")
                .contains("no lower bound")
        );
        assert!(
            bump("*", &CARGO, "1.4.0")
                .expect_err("wildcard")
                .contains("wildcard")
        );
        assert!(
            bump("1.x", &NPM, "1.4.0")
                .expect_err("wildcard")
                .contains("wildcard")
        );
        assert!(
            bump("^1.0.0 || ^2.0.0", &NPM, "1.4.0")
                .expect_err("union")
                .contains("||")
        );
        assert!(
            bump("1.0.0 - 1.5.0", &NPM, "1.4.0")
                .expect_err("hyphen")
                .contains("hyphen")
        );
        assert!(bump("", &CARGO, "1.4.0").is_err());
        assert!(
            bump("latest", &NPM, "1.4.0")
                .expect_err("tag")
                .contains("not a version")
        );
    }

    #[test]
    fn a_format_without_bare_versions_requires_an_operator() {
        let pip = Syntax {
            separator: Separator::Comma,
            ops: &[("==", Op::Exact)],
            bare: None,
        };
        assert!(
            parse("1.2", &pip)
                .expect_err("bare")
                .contains("no comparison operator")
        );
    }
}
