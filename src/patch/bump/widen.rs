//! Version arithmetic for widening a range whose upper bound excludes the fix: the window a
//! range keeps (`>=5.3,<5.4` is one minor wide, `^1.2.3` one major), moved so that it starts
//! at the fix (`>=5.4,<5.5`, `^2.0.0`) instead of refusing the bump.
//!
//! Everything here works on the numbers as written, because the shape of a range lives in its
//! written precision: `<5.4` and `<5.4.0` are the same bound, but the first says "next minor"
//! and the second could as well be a patch. [`crate::patch::bump::constraint`] decides when to
//! widen and which comparators to rewrite; every manifest format reaches this file through it.

use crate::patch::bump::constraint::Op;
use crate::patch::bump::version::Version;

/// A version written as release numbers (`5.4`, `v0.27.0`, `2.0.0-0`), split so the numbers
/// can change while what surrounds them stays as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Release<'a> {
    /// A leading `v`, kept as written.
    prefix: &'a str,
    numbers: Vec<u64>,
    /// Anything after the numbers (`-0`, `rc1`, `.post1`), kept as written.
    suffix: &'a str,
}

impl<'a> Release<'a> {
    /// Reads the release numbers at the start of `text`. `None` when it does not start with a
    /// number, or carries a PEP 440 epoch (`1!2.0`), whose numbers are not the release.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        let (prefix, mut rest) = match text.strip_prefix(['v', 'V']) {
            Some(rest) => (&text[..1], rest),
            None => ("", text),
        };
        let mut numbers = Vec::new();
        loop {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return None;
            }
            numbers.push(rest[..digits].parse().ok()?);
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => rest = after,
                _ => break,
            }
        }
        if rest.starts_with('!') {
            return None;
        }
        Some(Self {
            prefix,
            numbers,
            suffix: rest,
        })
    }

    /// How many release numbers are written: the precision of the bound.
    pub(crate) fn precision(&self) -> usize {
        self.numbers.len()
    }

    /// Only digits and dots, as a fix's version usually is; a tag or prefix makes padding or
    /// trimming it change what it means.
    fn is_plain(&self) -> bool {
        self.prefix.is_empty() && self.suffix.is_empty()
    }
}

/// Whether `text` is release numbers and nothing else (`5.3`, not `5.3rc1` or `v5.3`).
pub(crate) fn is_plain_release(text: &str) -> bool {
    Release::parse(text).is_some_and(|release| release.is_plain())
}

fn join(numbers: &[u64]) -> String {
    numbers
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The exclusive upper bound that `^`, `~`, `~=` and `==X.*` carry without writing it, as a
/// version: `^1.2.3` -> 2, `^0.2.3` -> 0.3, `~1.2.3` -> 1.3, `~=1.4.5` -> 1.5, `==5.3.*` ->
/// 5.4. `None` for the other operators, and for `~=` with one number, which PEP 440 forbids.
pub(crate) fn implicit_upper(op: Op, written: &str) -> Option<Version> {
    let numbers = Release::parse(written)?.numbers;
    let last = numbers.len().checked_sub(1)?;
    let position = match op {
        // Cargo, npm and Poetry agree: the leftmost non-zero number may not change; with
        // every number zero (`^0.0`), the last written one.
        Op::Caret => numbers.iter().position(|&n| n != 0).unwrap_or(last),
        Op::Tilde => last.min(1),
        Op::Compatible => last.checked_sub(1)?,
        Op::Wildcard | Op::NotWildcard => last,
        _ => return None,
    };
    let mut upper = numbers[..=position].to_vec();
    upper[position] = upper[position].checked_add(1)?;
    Version::parse(&join(&upper))
}

/// `target` written with `precision` release numbers when that names the same version
/// (`1.4.0` as `1.4`, `5.4` as `5.4.0`), so a widened range keeps the precision its author
/// wrote; otherwise (`1.4.2` in a two-number range, a pre-release) `target` as it is.
pub(crate) fn fit(target: &str, precision: usize) -> String {
    let Some(release) = Release::parse(target).filter(Release::is_plain) else {
        return target.to_owned();
    };
    // Working on the written parts keeps the target's own spelling of each number.
    let mut parts: Vec<&str> = target.split('.').collect();
    let mut count = release.precision();
    while count > precision && release.numbers[count - 1] == 0 {
        count -= 1;
    }
    parts.truncate(count);
    let mut fitted = parts.join(".");
    for _ in count..precision {
        fitted.push_str(".0");
    }
    fitted
}

/// The start of the `==X.*` window of `precision` numbers that `target` opens (`5.4` for
/// `==5.3.*` and the fix 5.4.0). `None` when the fix is inside a window rather than at its
/// start: `==5.4.*` would then also admit the vulnerable releases below it.
pub(crate) fn wildcard_start(target: &str, precision: usize) -> Option<String> {
    let fitted = fit(target, precision);
    let release = Release::parse(&fitted).filter(Release::is_plain)?;
    (release.precision() == precision).then_some(fitted)
}

/// The exclusive upper bound `written` moved to the window that holds `target`, keeping its
/// granularity (its last non-zero number: `<5.4` is the next minor, `<2.0.0` the next major),
/// its precision and whatever surrounds the numbers: `<5.4` with the fix 5.4 -> `<5.5`,
/// `<0.27.0` with 0.27.0 -> `<0.28.0`, `<2.0.0` with 2.3.1 -> `<3.0.0`, `<2.0.0-0` with 2.1.0
/// -> `<3.0.0-0`. Errors are reasons for the person who must widen the range by hand.
pub(crate) fn move_upper(written: &str, target: &str) -> Result<String, String> {
    let upper = Release::parse(written)
        .ok_or_else(|| format!("`{written}` is not written as plain release numbers"))?;
    let target_numbers = Release::parse(target)
        .ok_or_else(|| format!("the fix `{target}` is not written as plain release numbers"))?
        .numbers;
    let granularity = upper
        .numbers
        .iter()
        .rposition(|&n| n != 0)
        .ok_or_else(|| format!("`{written}` admits nothing, so it has no window to keep"))?;
    let mut numbers = Vec::with_capacity(upper.precision());
    for position in 0..upper.precision() {
        let from_target = target_numbers.get(position).copied().unwrap_or(0);
        numbers.push(match position.cmp(&granularity) {
            std::cmp::Ordering::Less => from_target,
            std::cmp::Ordering::Equal => from_target
                .checked_add(1)
                .ok_or_else(|| format!("the fix `{target}` has a number too large to step"))?,
            std::cmp::Ordering::Greater => 0,
        });
    }
    Ok(format!(
        "{}{}{}",
        upper.prefix,
        join(&numbers),
        upper.suffix
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn releases_split_into_prefix_numbers_and_suffix() {
        let release = Release::parse("v2.0.0-0").expect("a release");
        assert_eq!(
            (release.prefix, release.numbers.as_slice(), release.suffix),
            ("v", [2, 0, 0].as_slice(), "-0")
        );
        assert_eq!(Release::parse("5.4").map(|r| r.precision()), Some(2));
        assert_eq!(
            Release::parse("1.0.post1").map(|r| r.suffix),
            Some(".post1")
        );
        assert_eq!(Release::parse("1!2.0"), None);
        assert_eq!(Release::parse("latest"), None);
    }

    #[test]
    fn implicit_upper_bounds_follow_each_operator() {
        let upper = |op, written| implicit_upper(op, written);
        assert_eq!(upper(Op::Caret, "1.2.3"), Some(v("2")));
        assert_eq!(upper(Op::Caret, "0.2.3"), Some(v("0.3")));
        assert_eq!(upper(Op::Caret, "0.0.3"), Some(v("0.0.4")));
        assert_eq!(upper(Op::Caret, "0.0"), Some(v("0.1")));
        assert_eq!(upper(Op::Tilde, "1.2.3"), Some(v("1.3")));
        assert_eq!(upper(Op::Tilde, "1"), Some(v("2")));
        assert_eq!(upper(Op::Compatible, "1.4.5"), Some(v("1.5")));
        assert_eq!(upper(Op::Compatible, "2.2"), Some(v("3")));
        assert_eq!(upper(Op::Compatible, "2"), None);
        assert_eq!(upper(Op::Wildcard, "5.3"), Some(v("5.4")));
        assert_eq!(upper(Op::Lt, "5.3"), None);
    }

    #[test]
    fn fitting_keeps_the_written_precision_only_when_the_version_is_the_same() {
        assert_eq!(fit("1.4.0", 2), "1.4");
        assert_eq!(fit("2.0.0", 1), "2");
        assert_eq!(fit("5.4", 3), "5.4.0");
        assert_eq!(fit("0.27.0", 3), "0.27.0");
        assert_eq!(fit("1.4.2", 2), "1.4.2");
        assert_eq!(fit("2.0.0-rc.1", 2), "2.0.0-rc.1");
        assert_eq!(fit("5.4.post1", 3), "5.4.post1");
    }

    #[test]
    fn a_wildcard_starts_only_where_the_fix_opens_its_window() {
        assert_eq!(wildcard_start("5.4", 2), Some("5.4".to_owned()));
        assert_eq!(wildcard_start("5.4.0", 2), Some("5.4".to_owned()));
        assert_eq!(wildcard_start("5", 2), Some("5.0".to_owned()));
        assert_eq!(wildcard_start("5.4.1", 2), None);
        assert_eq!(wildcard_start("5.4rc1", 2), None);
    }

    #[test]
    fn upper_bounds_move_by_their_own_granularity() {
        assert_eq!(move_upper("5.4", "5.4"), Ok("5.5".to_owned()));
        assert_eq!(move_upper("0.27.0", "0.27.0"), Ok("0.28.0".to_owned()));
        assert_eq!(move_upper("2.0.0", "2.3.1"), Ok("3.0.0".to_owned()));
        assert_eq!(move_upper("2", "2.1.0"), Ok("3".to_owned()));
        assert_eq!(move_upper("1.4", "1.4.0"), Ok("1.5".to_owned()));
        // Far beyond the old window: the new window is the one around the fix.
        assert_eq!(move_upper("1.4", "2.1.0"), Ok("2.2".to_owned()));
        assert_eq!(move_upper("1.4.10", "1.5"), Ok("1.5.1".to_owned()));
        assert_eq!(move_upper("2.0.0-0", "2.1.0"), Ok("3.0.0-0".to_owned()));
        assert_eq!(move_upper("2.0.0", "2.0.0-rc.1"), Ok("3.0.0".to_owned()));
        assert!(
            move_upper("0.0", "1.0")
                .expect_err("no non-zero number")
                .contains("admits nothing")
        );
        assert!(
            move_upper("1!2.0", "2.1")
                .expect_err("epoch")
                .contains("plain release numbers")
        );
    }
}
