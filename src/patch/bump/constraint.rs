//! Version constraints as the manifest formats write them (`^1.2`, `>=1.2, <2`, `==1.2.3`,
//! `~=1.2`, `==1.2.*`), parsed into comparators with their positions so a bump can rewrite just
//! the version text and keep the user's operator, spacing and separators.
//!
//! A constraint whose upper bound (written, or implied by `^`, `~`, `~=`, `==X.*`) excludes
//! the fix is widened: the same shape, moved to start at the fix (`>=5.3,<5.4` -> `>=5.4,<5.5`).
//! Every format that has ranges calls [`bump`]; the arithmetic is in
//! [`crate::patch::bump::widen`].

use std::ops::Range;

use crate::patch::bump::version::Version;
use crate::patch::bump::widen::{self, Release};

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
    /// PEP 440 `==1.2.*`: the 1.2 releases. The version span excludes the `.*`.
    Wildcard,
    /// PEP 440 `!=1.2.*`: anything but the 1.2 releases.
    NotWildcard,
}

impl Op {
    /// Whether the comparator sets a lower bound (every admitted version is >= its version).
    fn is_lower_bound(self) -> bool {
        matches!(
            self,
            Self::Caret
                | Self::Tilde
                | Self::Exact
                | Self::Compatible
                | Self::Ge
                | Self::Gt
                | Self::Wildcard
        )
    }

    /// Whether `version` meets the comparator whose version is written `written`.
    fn admits(self, written: &str, version: &Version) -> bool {
        let Some(bound) = Version::parse(written) else {
            return false;
        };
        let below_implicit_upper =
            || widen::implicit_upper(self, written).is_none_or(|upper| *version < upper);
        match self {
            Self::Ge => *version >= bound,
            Self::Gt => *version > bound,
            Self::Le => *version <= bound,
            Self::Lt => *version < bound,
            Self::Ne => *version != bound,
            Self::Exact => *version == bound,
            Self::Caret | Self::Tilde | Self::Compatible | Self::Wildcard => {
                *version >= bound && below_implicit_upper()
            }
            Self::NotWildcard => !(*version >= bound && below_implicit_upper()),
        }
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

/// The operator spellings of a format and what a bare version means. `ops` is a list of
/// groups tried in order, each longest first, so formats can share the groups they spell
/// alike.
pub(crate) struct Syntax {
    pub separator: Separator,
    pub ops: &'static [&'static [(&'static str, Op)]],
    pub bare: Option<Op>,
}

impl Syntax {
    /// Every operator spelling, in the order they are tried.
    fn operators(&self) -> impl Iterator<Item = &(&'static str, Op)> {
        self.ops.iter().flat_map(|group| group.iter())
    }
}

/// The inequalities as Cargo and npm spell them, longest first.
pub(crate) const INEQUALITIES: &[(&str, Op)] =
    &[(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)];

/// The semver shorthands of Cargo, npm and Poetry: `=1.2.3`, `^1.2`, `~1.2`.
pub(crate) const SEMVER_SHORTHANDS: &[(&str, Op)] =
    &[("=", Op::Exact), ("^", Op::Caret), ("~", Op::Tilde)];

/// PEP 440's specifier operators, longest first (`===` is refused before parsing).
pub(crate) const PEP440_OPERATORS: &[(&str, Op)] = &[
    ("==", Op::Exact),
    ("~=", Op::Compatible),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
];

/// What a bump makes of a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// Every version the constraint admits is already >= the target.
    Satisfied,
    /// The constraint rewritten to require at least the target; its upper bounds already
    /// admitted it.
    Updated(String),
    /// The constraint's upper bound excluded the target, so the whole range was moved to a
    /// window of the same shape that starts at the target.
    Widened(String),
}

impl Rewrite {
    /// For formats without ranges (a pinned version): `None` means already satisfied.
    pub(crate) fn pinned(new: Option<String>) -> Self {
        new.map_or(Self::Satisfied, Self::Updated)
    }
}

/// Whether every comparator of `constraint` admits `version`; `None` when either cannot be
/// read (an `||` alternative, a tag), which a caller must not take as a yes.
pub(crate) fn admits(constraint: &str, syntax: &Syntax, version: &str) -> Option<bool> {
    let version = Version::parse(version)?;
    let comparators = parse(constraint, syntax).ok()?;
    Some(all_admit(constraint, &comparators, &version))
}

/// Parses `constraint` in a format's `syntax` and rewrites it to require at least `target`
/// (see [`rewrite`]), then checks the result admits the target: a rewrite that did not would
/// be a wrong fix, so it is refused rather than written.
pub(crate) fn bump(constraint: &str, syntax: &Syntax, target: &str) -> Result<Rewrite, String> {
    let comparators = parse(constraint, syntax)?;
    let rewrite = rewrite(constraint, &comparators, target)?;
    if let Rewrite::Updated(new) | Rewrite::Widened(new) = &rewrite {
        let version =
            Version::parse(target).ok_or_else(|| format!("`{target}` is not a version"))?;
        if !all_admit(new, &parse(new, syntax)?, &version) {
            return Err(format!(
                "the rewritten range `{new}` would not admit {target}; this is a bug"
            ));
        }
    }
    Ok(rewrite)
}

/// Whether every one of the parsed `comparators` of `constraint` admits `version`.
fn all_admit(constraint: &str, comparators: &[Comparator], version: &Version) -> bool {
    comparators
        .iter()
        .all(|c| c.op.admits(&constraint[c.version_span.clone()], version))
}

/// Splits `constraint` into comparators. Errors are reasons a person can act on.
fn parse(constraint: &str, syntax: &Syntax) -> Result<Vec<Comparator>, String> {
    let segments = match syntax.separator {
        Separator::Comma => comma_segments(constraint),
        Separator::Whitespace => whitespace_segments(constraint, syntax),
    };
    segments
        .into_iter()
        .map(|segment| comparator(constraint, segment, syntax))
        .collect()
}

/// The trimmed pieces between commas (`>=1.2, <2`), empty ones included so that a stray
/// comma is refused rather than skipped.
fn comma_segments(constraint: &str) -> Vec<Range<usize>> {
    let mut start = 0;
    let mut out = Vec::new();
    for part in constraint.split(',') {
        out.push(trimmed(constraint, start..start + part.len()));
        start += part.len() + 1;
    }
    out
}

/// The comparators of a space-separated (npm) range. An operator standing apart from its
/// version (`>= 1.2.0`) is one comparator with the token after it.
fn whitespace_segments(constraint: &str, syntax: &Syntax) -> Vec<Range<usize>> {
    let tokens = tokens(constraint);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &constraint[tokens[i].clone()];
        let lone_op = syntax.operators().any(|(spelling, _)| *spelling == token);
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

/// Reads the comparator in `segment` of `constraint`: its operator in the format's spelling
/// and one version. Refuses what a bump cannot rewrite in place (unions, hyphen ranges,
/// wildcards other than PEP 440's `==X.*` and `!=X.*`), so no caller has to.
fn comparator(
    constraint: &str,
    segment: Range<usize>,
    syntax: &Syntax,
) -> Result<Comparator, String> {
    let text = &constraint[segment.clone()];
    if text.is_empty() {
        return Err("it has an empty comparator".to_owned());
    }
    if text.contains("||") {
        return Err("it is a union of ranges (`||`)".to_owned());
    }
    if text == "-" {
        return Err("it is a hyphen range (`a - b`)".to_owned());
    }
    let found = syntax
        .operators()
        .find(|(spelling, _)| text.starts_with(spelling));
    let (op, op_len) = match (found, syntax.bare) {
        (Some((spelling, op)), _) => (*op, spelling.len()),
        (None, Some(bare)) => (bare, 0),
        (None, None) => return Err(format!("`{text}` has no comparison operator")),
    };
    let op_span = segment.start..segment.start + op_len;
    let version_span = trimmed(constraint, op_span.end..segment.end);
    let version = &constraint[version_span.clone()];
    if version.is_empty() || version.contains(char::is_whitespace) {
        return Err(format!(
            "`{text}` is not an operator followed by one version"
        ));
    }
    let (op, version_span) = match pep440_wildcard(&constraint[op_span.clone()], version) {
        Some(prefix) => {
            if !widen::is_plain_release(prefix) {
                return Err(format!("`{text}` is not a wildcard over release numbers"));
            }
            let op = if op == Op::Ne {
                Op::NotWildcard
            } else {
                Op::Wildcard
            };
            (op, version_span.start..version_span.start + prefix.len())
        }
        None => (op, version_span),
    };
    let version = &constraint[version_span.clone()];
    if is_wildcard(version) {
        return Err(format!("`{text}` is a wildcard"));
    }
    if Version::parse(version).is_none() {
        return Err(format!("`{version}` is not a version"));
    }
    Ok(Comparator {
        op,
        op_span,
        version_span,
    })
}

/// The fix a constraint is rewritten for, as written and as read.
struct Target<'a> {
    text: &'a str,
    version: Version,
}

/// Rewrites `constraint` so that it requires at least `target`, keeping every operator (a
/// strict `>` becomes `>=`, since `>target` would exclude the fix itself) and all spacing.
///
/// When an upper bound excludes the target (`<5.4` for 5.4, or the implied one of `^1.2`
/// for 2.0.0), the range is widened instead: every lower bound becomes the target in the
/// precision it was written with, and every excluding `<` moves up by its own granularity, so
/// `>=5.3,<5.4` becomes `>=5.4,<5.5`. Every lower bound ends at the target, so the installed,
/// vulnerable version (below the target) is rejected. What cannot keep its shape is refused:
/// an `!=` of the fix, a `<=` bound (it has no window width), a `==X.*` whose window would
/// also hold vulnerable releases.
fn rewrite(
    constraint: &str,
    comparators: &[Comparator],
    target_text: &str,
) -> Result<Rewrite, String> {
    let target = Target {
        text: target_text,
        version: Version::parse(target_text)
            .ok_or_else(|| format!("`{target_text}` is not a version"))?,
    };
    if lowest_admitted(constraint, comparators)? >= target.version {
        return Ok(Rewrite::Satisfied);
    }
    let widened = must_widen(constraint, comparators, &target)?;
    let mut updated = constraint.to_owned();
    // Back to front, so earlier ranges stay valid.
    for comparator in comparators.iter().rev() {
        if let Some(replacement) = replacement(constraint, comparator, &target, widened)? {
            updated.replace_range(comparator.version_span.clone(), &replacement);
        }
        if comparator.op == Op::Gt {
            updated.replace_range(comparator.op_span.clone(), ">=");
        }
    }
    Ok(if widened {
        Rewrite::Widened(updated)
    } else {
        Rewrite::Updated(updated)
    })
}

/// The highest lower bound: the lowest version the constraint admits. A constraint with no
/// lower bound leaves the installed version to something else, so there is nothing to raise.
fn lowest_admitted(constraint: &str, comparators: &[Comparator]) -> Result<Version, String> {
    let mut lowest_admitted: Option<Version> = None;
    for comparator in comparators.iter().filter(|c| c.op.is_lower_bound()) {
        let version = Version::parse(&constraint[comparator.version_span.clone()])
            .ok_or_else(|| "a comparator has no version".to_owned())?;
        if lowest_admitted
            .as_ref()
            .is_none_or(|lowest| version > *lowest)
        {
            lowest_admitted = Some(version);
        }
    }
    lowest_admitted.ok_or_else(|| {
        "it sets no lower bound, so the installed version is chosen elsewhere \
         (a lock or constraints file)"
            .to_owned()
    })
}

/// Whether some upper bound (written or implied) excludes the target, so the range must move
/// rather than only rise; an error for a comparator that excludes it and cannot move.
fn must_widen(
    constraint: &str,
    comparators: &[Comparator],
    target: &Target,
) -> Result<bool, String> {
    let target_text = target.text;
    let mut widened = false;
    for comparator in comparators {
        let version = &constraint[comparator.version_span.clone()];
        let written = written(constraint, comparator);
        let admits = comparator.op.admits(version, &target.version);
        match comparator.op {
            // The target is above every lower bound, so a wildcard that admits it holds it
            // inside its window, together with the vulnerable releases below it; a wildcard
            // cannot start anywhere but at its prefix.
            Op::Wildcard if admits => {
                return Err(format!(
                    "`{written}` also admits the releases below the fix {target_text}, and a \
                     wildcard cannot start above its prefix; write `>={target_text}` with an \
                     upper bound by hand"
                ));
            }
            _ if admits => {}
            Op::Ne | Op::NotWildcard => {
                return Err(format!(
                    "its exclusion `{written}` rules out the fix {target_text} itself; remove \
                     it by hand if the fix is acceptable"
                ));
            }
            Op::Le => {
                return Err(format!(
                    "its bound `{written}` excludes {target_text}, and a bound written with `<=` \
                     has no window width to keep; widen the range by hand"
                ));
            }
            // Below its version the target cannot be (it is above every lower bound), so an
            // implied window that rejects it ends below it.
            Op::Lt | Op::Wildcard | Op::Caret | Op::Tilde | Op::Compatible => widened = true,
            // A pin moves to the target, as in a plain bump.
            Op::Exact | Op::Ge | Op::Gt => {}
        }
    }
    Ok(widened)
}

/// The new version text of one comparator, `None` when it stays as written: lower bounds
/// move to the target (in their own precision when the range is `widened`), a wildcard to
/// the window the target opens, and an excluding `<` up by its own granularity.
fn replacement(
    constraint: &str,
    comparator: &Comparator,
    target: &Target,
    widened: bool,
) -> Result<Option<String>, String> {
    let target_text = target.text;
    let version = &constraint[comparator.version_span.clone()];
    // `None` for a version that is not plain release numbers (an epoch): the target then
    // goes in as written, as in a plain bump.
    let precision = Release::parse(version).map(|release| release.precision());
    Ok(match comparator.op {
        Op::Wildcard => Some(
            precision
                .and_then(|precision| widen::wildcard_start(target_text, precision))
                .ok_or_else(|| {
                    format!(
                        "`{}` excludes {target_text}, and the wildcard over the fix's release \
                         would also admit the releases below it; write `>={target_text}` with \
                         an upper bound by hand",
                        written(constraint, comparator)
                    )
                })?,
        ),
        op if op.is_lower_bound() && widened => Some(precision.map_or_else(
            || target_text.to_owned(),
            |precision| widen::fit(target_text, precision),
        )),
        op if op.is_lower_bound() => Some(target_text.to_owned()),
        Op::Lt if widened && !Op::Lt.admits(version, &target.version) => {
            Some(widen::move_upper(version, target_text).map_err(|reason| {
                format!(
                    "its bound `{}` excludes {target_text} and cannot be widened: {reason}",
                    written(constraint, comparator)
                )
            })?)
        }
        _ => None,
    })
}

/// The comparator as written, for messages: `<5.4`, `>= 1.2`, `==5.3.*`.
fn written(constraint: &str, comparator: &Comparator) -> String {
    let text = &constraint[comparator.op_span.start..comparator.version_span.end];
    match comparator.op {
        Op::Wildcard | Op::NotWildcard => format!("{text}.*"),
        _ => text.to_owned(),
    }
}

/// The prefix of a PEP 440 prefix match (`5.3` of `==5.3.*` or `!=5.3.*`), which only `==`
/// and `!=` may carry; every other wildcard stays refused.
fn pep440_wildcard<'a>(op: &str, version: &'a str) -> Option<&'a str> {
    matches!(op, "==" | "!=")
        .then(|| version.strip_suffix(".*"))
        .flatten()
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

    // The formats' own syntaxes, so these tests read constraints as the manifests do.
    use crate::patch::bump::cargo_toml::SYNTAX as CARGO;
    use crate::patch::bump::package_json::SYNTAX as NPM;
    // PEP 440, as requirements files and PEP 621 write it.
    use crate::patch::bump::requirements_txt::SYNTAX as PEP440;

    /// The module's entry point, with the check that the result admits the target.
    fn bump(constraint: &str, syntax: &Syntax, target: &str) -> Result<Rewrite, String> {
        super::bump(constraint, syntax, target)
    }

    fn updated(text: &str) -> Result<Rewrite, String> {
        Ok(Rewrite::Updated(text.to_owned()))
    }

    fn widened(text: &str) -> Result<Rewrite, String> {
        Ok(Rewrite::Widened(text.to_owned()))
    }

    /// Whether every comparator of `constraint` admits `version`.
    fn admits(constraint: &str, syntax: &Syntax, version: &str) -> bool {
        let version = Version::parse(version).expect("a version");
        parse(constraint, syntax)
            .expect("a constraint")
            .iter()
            .all(|c| c.op.admits(&constraint[c.version_span.clone()], &version))
    }

    #[test]
    fn each_constraint_bumps_as_expected() {
        let cases = [
            // Single comparators keep their operator.
            ("^1.2.3", &CARGO, "1.4.0", updated("^1.4.0")),
            ("~1.2.3", &CARGO, "1.2.5", updated("~1.2.5")),
            (">=1.2", &CARGO, "1.4.0", updated(">=1.4.0")),
            ("=1.2.3", &CARGO, "1.4.0", updated("=1.4.0")),
            ("1.2", &CARGO, "1.4.0", updated("1.4.0")),
            ("> 1.2", &CARGO, "1.4.0", updated(">= 1.4.0")),
            ("==5.3", &PEP440, "5.4", updated("==5.4")),
            // `~=5.3` is every 5.x from 5.3 on, so 5.4 is inside it.
            ("~=5.3", &PEP440, "5.4", updated("~=5.4")),
            // Compound ranges move the lower bound and keep the upper.
            (">=1.2, <2", &CARGO, "1.4.0", updated(">=1.4.0, <2")),
            (
                ">= 1.2.0  < 2.0.0",
                &NPM,
                "1.4.0",
                updated(">= 1.4.0  < 2.0.0"),
            ),
            (
                ">=1.2, <=1.4.0",
                &CARGO,
                "1.4.0",
                updated(">=1.4.0, <=1.4.0"),
            ),
            // Upper bounds that exclude the target are widened. The lower bound keeps its two
            // numbers; `<1.4` is a minor window, so it ends at 1.5.
            (">=1.2, <1.4", &CARGO, "1.4.0", widened(">=1.4, <1.5")),
            // A fix that needs more numbers than written keeps them.
            (">=1.2, <1.4", &CARGO, "1.4.2", widened(">=1.4.2, <1.5")),
            (">=1.5, <2", &CARGO, "2.1.0", widened(">=2.1, <3")),
            // Exclusive upper bounds keep their width.
            (">=5.3,<5.4", &PEP440, "5.4", widened(">=5.4,<5.5")),
            (
                ">=0.26.1,<0.27.0",
                &PEP440,
                "0.27.0",
                widened(">=0.27.0,<0.28.0"),
            ),
            // A major window stays a major window, however far the fix is inside it.
            (
                ">=1.2.0,<2.0.0",
                &PEP440,
                "2.3.1",
                widened(">=2.3.1,<3.0.0"),
            ),
            (">= 5.3, < 5.4", &PEP440, "5.4", widened(">= 5.4, < 5.5")),
            (">5.3,<5.4", &PEP440, "5.4", widened(">=5.4,<5.5")),
            (
                ">=0.26.1,<0.27.0",
                &PEP440,
                "0.27",
                widened(">=0.27.0,<0.28.0"),
            ),
            (
                ">=5.3,<5.4,!=5.3.2",
                &PEP440,
                "5.4.1",
                widened(">=5.4.1,<5.5,!=5.3.2"),
            ),
            // npm ranges are widened with their spacing and pre-release floor.
            (">=1.0.0 <1.1.0", &NPM, "1.1.0", widened(">=1.1.0 <1.2.0")),
            (
                ">= 1.0.0  < 1.1.0",
                &NPM,
                "1.1.0",
                widened(">= 1.1.0  < 1.2.0"),
            ),
            // `-0` keeps pre-releases of the next major out, as it did of this one.
            (
                ">=1.0.0 <2.0.0-0",
                &NPM,
                "2.1.0",
                widened(">=2.1.0 <3.0.0-0"),
            ),
            // Implied upper bounds move with the fix.
            ("~1.2.3", &NPM, "1.3.1", widened("~1.3.1")),
            ("^1.2.3", &NPM, "2.0.1", widened("^2.0.1")),
            ("^1.2", &CARGO, "2.0.0", widened("^2.0")),
            ("0.26", &CARGO, "0.27.1", widened("0.27.1")),
            // `~=5.3.1` is the 5.3 patch releases: the fix 5.4 opens the 5.4 ones.
            ("~=5.3.1", &PEP440, "5.4", widened("~=5.4.0")),
            ("~=5.3", &PEP440, "6.0", widened("~=6.0")),
            ("~= 5.3", &PEP440, "6.0.0", widened("~= 6.0")),
            // Wildcards move to the window the fix opens.
            ("==5.3.*", &PEP440, "5.4", widened("==5.4.*")),
            ("==5.3.*", &PEP440, "5.4.0", widened("==5.4.*")),
            ("== 1.*", &PEP440, "2.0.0", widened("== 2.*")),
            // Constraints already at or above the target are satisfied.
            (">=2.0", &CARGO, "1.4.0", Ok(Rewrite::Satisfied)),
            ("^1.4", &CARGO, "1.4.0", Ok(Rewrite::Satisfied)),
            (">1.4.0", &CARGO, "1.4.0", Ok(Rewrite::Satisfied)),
            ("1.5.0", &NPM, "1.4.0", Ok(Rewrite::Satisfied)),
            // What cannot keep its shape is refused.
            (
                ">=5.3,!=5.4",
                &PEP440,
                "5.4",
                Err(
                    "its exclusion `!=5.4` rules out the fix 5.4 itself; remove it by hand if \
                     the fix is acceptable"
                        .to_owned(),
                ),
            ),
            (
                ">=1.2, <=1.3.9",
                &CARGO,
                "1.4.0",
                Err(
                    "its bound `<=1.3.9` excludes 1.4.0, and a bound written with `<=` has no \
                     window width to keep; widen the range by hand"
                        .to_owned(),
                ),
            ),
        ];
        for (constraint, syntax, target, expected) in cases {
            assert_eq!(
                bump(constraint, syntax, target),
                expected,
                "{constraint} to {target}"
            );
        }
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            // A wildcard that must also admit vulnerable releases is refused, inside its window
            // or in the next one.
            (
                "==5.3.*",
                &PEP440,
                "5.3.2",
                "`==5.3.*` also admits the releases below the fix 5.3.2",
            ),
            (
                "==5.3.*",
                &PEP440,
                "5.4.1",
                "`==5.3.*` excludes 5.4.1, and the wildcard over the fix's release",
            ),
            // Only `==` and `!=` take a prefix match; elsewhere a wildcard stays refused.
            ("=1.2.*", &CARGO, "1.3.0", "wildcard"),
            (
                "==5.3rc1.*",
                &PEP440,
                "5.4",
                "not a wildcard over release numbers",
            ),
            // What cannot keep its shape is refused.
            (
                ">=5.3,<5.4,!=5.4.*",
                &PEP440,
                "5.4.1",
                "`!=5.4.*` rules out the fix 5.4.1",
            ),
            (
                ">=0.0.1,<0.0",
                &PEP440,
                "0.1",
                "`<0.0` excludes 0.1 and cannot be widened",
            ),
            // Unbounded, wildcard and union ranges are refused.
            ("<2", &CARGO, "1.4.0", "no lower bound"),
            ("*", &CARGO, "1.4.0", "wildcard"),
            ("1.x", &NPM, "1.4.0", "wildcard"),
            ("^1.0.0 || ^2.0.0", &NPM, "1.4.0", "||"),
            ("1.0.0 - 1.5.0", &NPM, "1.4.0", "hyphen"),
            ("latest", &NPM, "1.4.0", "not a version"),
        ];
        for (constraint, syntax, target, needle) in cases {
            let reason = bump(constraint, syntax, target)
                .expect_err(&format!("{constraint} to {target} is refused"));
            assert!(reason.contains(needle), "{constraint}: {reason}");
        }
        assert!(bump("", &CARGO, "1.4.0").is_err());
    }

    #[test]
    fn widened_ranges_admit_the_fix_and_reject_the_installed_version() {
        let cases: [(&str, &Syntax, &str, &str); 9] = [
            (">=5.3,<5.4", &PEP440, "5.3.1", "5.4"),
            (">=0.26.1,<0.27.0", &PEP440, "0.26.1", "0.27.0"),
            (">=1.2, <1.4", &CARGO, "1.3.9", "1.4.0"),
            (">=1.0.0 <1.1.0", &NPM, "1.0.4", "1.1.0"),
            ("~1.2.3", &NPM, "1.2.3", "1.3.1"),
            ("^0.2.3", &CARGO, "0.2.9", "0.3.0"),
            ("~=5.3.1", &PEP440, "5.3.1", "5.4"),
            ("==5.3.*", &PEP440, "5.3.7", "5.4"),
            (">=1.2.0,<2.0.0", &PEP440, "1.9.0", "2.3.1"),
        ];
        for (before, syntax, installed, target) in cases {
            assert!(
                admits(before, syntax, installed),
                "{before} admits {installed}"
            );
            assert!(
                !admits(before, syntax, target),
                "{before} excludes {target}"
            );
            let Ok(Rewrite::Widened(after)) = bump(before, syntax, target) else {
                panic!("{before} should be widened for {target}");
            };
            assert!(admits(&after, syntax, target), "{after} admits {target}");
            assert!(
                !admits(&after, syntax, installed),
                "{after} rejects {installed}"
            );
        }
    }

    #[test]
    fn a_format_without_bare_versions_requires_an_operator() {
        let pip = Syntax {
            separator: Separator::Comma,
            ops: &[&[("==", Op::Exact)]],
            bare: None,
        };
        assert!(
            parse("1.2", &pip)
                .expect_err("bare")
                .contains("no comparison operator")
        );
    }
}
