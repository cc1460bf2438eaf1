//! Which fixed version each resolved copy of a package needs. An advisory is often fixed in
//! several release lines at once (`0.9.5` and `1.0.3`; Django's `4.1.10` and `4.2.4`), and a
//! lock can hold copies in more than one of them under different parents: each copy moves to
//! the fix of its own line, and a copy already at or above that fix is not vulnerable, even
//! when it is below the fix chosen for the project's own dependency.
//!
//! The facts name fixed versions, not affected ranges, so a line is read as a minor line
//! (epoch, major, minor): a copy whose minor line has a fix needs that fix; a copy in a line
//! without one (an unmaintained older line) needs the lowest fix above it; a copy above every
//! fix is taken as fixed. With one fixed version this is exactly "below the fix is vulnerable".

use crate::patch::bump::Version;

/// The fixed versions of one advisory, and the one chosen for the project's own dependency.
#[derive(Debug, Clone)]
pub struct FixedVersions {
    chosen: String,
    /// One fixed version per release line (the highest), lowest line first, as written.
    fixed: Vec<(Version, String)>,
}

impl FixedVersions {
    /// `chosen` (the fix the patch bumps to, or the lock-only update aims at) and the
    /// advisory's fixed versions; `chosen` counts as one of them. One fix per line is kept,
    /// the highest (several advisories' fixes in one line: each needs its own); `chosen` as
    /// the patch and the tool spell it when it is that one.
    pub fn new(chosen: &str, fixed_versions: &[String]) -> Self {
        let chosen = chosen.trim();
        let mut fixed: Vec<(Version, String, bool)> = fixed_versions
            .iter()
            .map(|text| (text.trim(), false))
            .chain([(chosen, true)])
            .filter_map(|(text, is_chosen)| {
                Version::parse(text).map(|v| (v, text.to_owned(), is_chosen))
            })
            .collect();
        fixed.sort_by(|a, b| {
            a.0.minor_line()
                .cmp(&b.0.minor_line())
                .then_with(|| b.0.cmp(&a.0))
                .then_with(|| b.2.cmp(&a.2))
        });
        fixed.dedup_by(|later, kept| later.0.minor_line() == kept.0.minor_line());
        Self {
            chosen: chosen.to_owned(),
            fixed: fixed.into_iter().map(|(v, text, _)| (v, text)).collect(),
        }
    }

    /// One advisory's own fixed versions, no fix chosen yet (planning, merging advisories).
    pub fn of_advisory(fixed_versions: &[String]) -> Self {
        Self::new("", fixed_versions)
    }

    /// One fixed version (a parent release a level up the chain, a test).
    pub fn single(version: &str) -> Self {
        Self::new(version, &[])
    }

    /// The fix chosen for the project's own dependency: what messages name.
    pub fn chosen(&self) -> &str {
        &self.chosen
    }

    /// Every fix kept, one per release line, lowest first.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.fixed.iter().map(|(_, text)| text.as_str())
    }

    /// The version a copy at `version` must move to; `None` when it is not vulnerable. A
    /// version that does not parse, or a list with no version that does, is not claimed
    /// fixed: it needs the chosen fix.
    pub fn for_copy(&self, version: &str) -> Option<&str> {
        match Version::parse(version) {
            Some(_) if self.fixed.is_empty() => Some(&self.chosen),
            Some(copy) => self.needed(&copy).map(|(_, text)| text.as_str()),
            None => Some(&self.chosen),
        }
    }

    fn needed(&self, copy: &Version) -> Option<&(Version, String)> {
        let line = copy.minor_line();
        let needed = match self.fixed.iter().find(|(v, _)| v.minor_line() == line) {
            Some(in_line) => in_line,
            None => self.fixed.iter().find(|(v, _)| v > copy)?,
        };
        (*copy < needed.0).then_some(needed)
    }

    /// Whether a copy at `version` is still vulnerable.
    pub fn is_vulnerable(&self, version: &str) -> bool {
        self.for_copy(version).is_some()
    }
}

/// One list of fixed versions that fixes every advisory of `lists` at once (one pull request
/// fixes all of a package's advisories): for each release line any of them fixes, the highest
/// of their fixes in it; a line is left out when an advisory has no fix in it but one above
/// (no release of that line fixes that advisory, so its copies must leave the line).
/// Advisories whose fixes are all below a line do not concern it.
pub fn fixing_all(lists: &[Vec<String>]) -> Vec<String> {
    let each: Vec<FixedVersions> = lists
        .iter()
        .map(|list| FixedVersions::of_advisory(list))
        .collect();
    let mut lines: Vec<(u64, u64, u64)> = each
        .iter()
        .flat_map(|f| f.fixed.iter().map(|(v, _)| v.minor_line()))
        .collect();
    lines.sort_unstable();
    lines.dedup();
    let mut found = Vec::new();
    'lines: for line in lines {
        let mut highest: Option<&(Version, String)> = None;
        for advisory in &each {
            match advisory.fixed.iter().find(|(v, _)| v.minor_line() == line) {
                Some(fix) if highest.is_none_or(|h| fix.0 > h.0) => highest = Some(fix),
                Some(_) => {}
                None if advisory.fixed.iter().any(|(v, _)| v.minor_line() > line) => {
                    continue 'lines;
                }
                None => {}
            }
        }
        found.extend(highest.map(|(_, text)| text.clone()));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixes(chosen: &str, fixed: &[&str]) -> FixedVersions {
        let fixed: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
        FixedVersions::new(chosen, &fixed)
    }

    #[test]
    fn one_fixed_version_means_below_it_is_vulnerable() {
        let lodash = FixedVersions::single("4.17.21");
        for (version, vulnerable) in [
            ("4.17.20", true),
            ("4.16.0", true),
            ("3.10.1", true),
            ("4.17.21", false),
            ("4.18.0", false),
            ("5.0.0", false),
        ] {
            assert_eq!(lodash.is_vulnerable(version), vulnerable, "{version}");
        }
        assert_eq!(lodash.for_copy("3.10.1"), Some("4.17.21"));
    }

    #[test]
    fn each_copy_moves_to_the_lowest_fix_in_its_own_line() {
        let crate_fixes = fixes("1.0.3", &["0.9.5", "1.0.3"]);
        assert_eq!(crate_fixes.for_copy("0.9.2"), Some("0.9.5"));
        assert_eq!(crate_fixes.for_copy("1.0.1"), Some("1.0.3"));
        // Fixed in its own line, though below the chosen fix.
        assert_eq!(crate_fixes.for_copy("0.9.6"), None);
        // An older line without a fix of its own needs the lowest fix above it.
        assert_eq!(crate_fixes.for_copy("0.8.0"), Some("0.9.5"));
        // A line released after the fix.
        assert_eq!(crate_fixes.for_copy("1.1.0"), None);
    }

    #[test]
    fn minor_lines_keep_backports_apart() {
        let django = fixes("4.2.4", &["3.2.20", "4.1.10", "4.2.4"]);
        assert_eq!(django.for_copy("4.2.1"), Some("4.2.4"));
        assert_eq!(django.for_copy("4.1.12"), None);
        assert_eq!(django.for_copy("4.1.5"), Some("4.1.10"));
        assert_eq!(django.for_copy("4.0.3"), Some("4.1.10"));
        assert_eq!(django.for_copy("5.0"), None);
    }

    #[test]
    fn several_advisories_are_fixed_per_line_by_the_highest_fix_each_line_needs() {
        let lists = [
            vec!["0.9.5".to_owned(), "1.0.3".to_owned()],
            vec!["1.0.4".to_owned()],
        ];
        // The second advisory has no 0.9 fix: no 0.9 release fixes both.
        assert_eq!(fixing_all(&lists), ["1.0.4"]);
        let lists = [
            vec!["0.9.5".to_owned(), "1.0.3".to_owned()],
            vec!["0.9.7".to_owned(), "1.0.1".to_owned()],
        ];
        assert_eq!(fixing_all(&lists), ["0.9.7", "1.0.3"]);
        assert_eq!(fixing_all(&[vec!["4.17.21".to_owned()]]), ["4.17.21"]);
        assert!(fixing_all(&[]).is_empty());
        // A fix at the start of its line, and a pre-release one, still name their lines.
        let lists = [vec![
            "2.5.7".to_owned(),
            "3.0.0".to_owned(),
            "4.0.0-rc.2".to_owned(),
        ]];
        assert_eq!(fixing_all(&lists), ["2.5.7", "3.0.0", "4.0.0-rc.2"]);
        let job = FixedVersions::new("2.5.7", &fixing_all(&lists));
        assert_eq!(job.for_copy("2.8.0"), Some("3.0.0"));
        assert_eq!(job.for_copy("4.0.0-rc.1"), Some("4.0.0-rc.2"));
        assert_eq!(job.for_copy("3.0.1"), None);
    }

    #[test]
    fn one_fix_per_line_the_highest_spelled_as_chosen_when_it_is_that_one() {
        let spelled = fixes("v1.0.3", &["1.0.3", "0.9.5"]);
        assert_eq!(spelled.for_copy("1.0.1"), Some("v1.0.3"));
        assert_eq!(spelled.versions().collect::<Vec<_>>(), ["0.9.5", "v1.0.3"]);
        // A chosen fix below another advisory's fix in its line does not hide that one.
        let lower = fixes("1.1.1", &["1.1.2"]);
        assert_eq!(lower.for_copy("1.1.1"), Some("1.1.2"));
    }

    #[test]
    fn the_chosen_fix_counts_and_an_unreadable_version_is_not_claimed_fixed() {
        let chosen_only = fixes("2.0.1", &[]);
        assert_eq!(chosen_only.for_copy("2.0.0"), Some("2.0.1"));
        assert_eq!(chosen_only.for_copy("git+ssh://host/x"), Some("2.0.1"));
        assert_eq!(chosen_only.chosen(), "2.0.1");
        let nothing_readable = fixes("unknown", &["also unknown"]);
        assert_eq!(nothing_readable.for_copy("1.0.0"), Some("unknown"));
    }
}
