//! Tolerant version ordering shared by every manifest format: numeric release components
//! (`1.2.10` > `1.2.9`), semver pre-releases (`2.0.0-rc.1` < `2.0.0`) and the PEP 440 phases
//! (`1!2.0`, `1.4.0rc1`, `2.0.post1`, `1.0.dev3`). It orders versions; it does not validate them.

use std::cmp::Ordering;

/// A parsed version. Compare with `Ord`; trailing zero release components are insignificant
/// (`1.4` == `1.4.0`), build metadata (`+build`) is ignored.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    phase: Phase,
    /// Identifiers of the pre/post/dev tag, e.g. `rc.1` -> [Text("rc"), Num(1)].
    tag: Vec<Ident>,
}

/// Where a version sits relative to its release: `1.0.dev1` < `1.0a1` < `1.0` < `1.0.post1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Dev,
    Pre,
    Release,
    Post,
}

/// Numeric identifiers sort before textual ones, as in semver.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Num(u64),
    Text(String),
}

impl Version {
    /// Parses `text`, tolerating a leading `v`, surrounding spaces and any suffix after the
    /// numeric release. Returns `None` when there is no leading number at all.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let text = text.split('+').next().unwrap_or(text);

        let (epoch, rest) = match text.split_once('!') {
            Some((epoch, rest)) => (epoch.parse().ok()?, rest),
            None => (0, text),
        };

        let mut release = Vec::new();
        let mut rest = rest;
        loop {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                break;
            }
            release.push(rest[..digits].parse().ok()?);
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => rest = after,
                _ => break,
            }
        }
        if release.is_empty() {
            return None;
        }
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }

        let tag = identifiers(rest);
        let phase = match tag.first() {
            None => Phase::Release,
            Some(Ident::Text(word)) if word == "dev" => Phase::Dev,
            Some(Ident::Text(word)) if ["post", "rev", "r"].contains(&word.as_str()) => Phase::Post,
            Some(_) => Phase::Pre,
        };
        Some(Self {
            epoch,
            release,
            phase,
            tag,
        })
    }

    /// The first release component (`4` of `4.17.21`).
    pub fn major(&self) -> u64 {
        self.release.first().copied().unwrap_or(0)
    }

    /// Whether this is a pre-release or development version.
    pub fn is_prerelease(&self) -> bool {
        matches!(self.phase, Phase::Dev | Phase::Pre)
    }

    /// The release line a fix is backported to: epoch, major and minor (`4.2.1` and `4.2.7`
    /// share one; `4.1.10` is another).
    pub fn minor_line(&self) -> (u64, u64, u64) {
        let part = |i: usize| self.release.get(i).copied().unwrap_or(0);
        (self.epoch, part(0), part(1))
    }
}

/// Splits a tag such as `-rc.1`, `rc1` or `.post2` into identifiers, normalising the PEP 440
/// spellings (`alpha`/`a`, `beta`/`b`, `c`/`pre`/`preview`/`rc`) so they order a < b < rc.
fn identifiers(tag: &str) -> Vec<Ident> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut numeric = false;
    let flush = |current: &mut String, out: &mut Vec<Ident>, numeric: bool| {
        if current.is_empty() {
            return;
        }
        let ident = if numeric {
            current
                .parse()
                .map_or_else(|_| Ident::Text(current.clone()), Ident::Num)
        } else {
            let lowered = current.to_ascii_lowercase();
            Ident::Text(
                match lowered.as_str() {
                    "alpha" => "a",
                    "beta" => "b",
                    "c" | "pre" | "preview" => "rc",
                    other => other,
                }
                .to_owned(),
            )
        };
        out.push(ident);
        current.clear();
    };
    for c in tag.chars() {
        if c.is_ascii_alphanumeric() {
            let digit = c.is_ascii_digit();
            if !current.is_empty() && digit != numeric {
                flush(&mut current, &mut out, numeric);
            }
            numeric = digit;
            current.push(c);
        } else {
            flush(&mut current, &mut out, numeric);
        }
    }
    flush(&mut current, &mut out, numeric);
    out
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| {
                let len = self.release.len().max(other.release.len());
                (0..len)
                    .map(|i| {
                        let a = self.release.get(i).copied().unwrap_or(0);
                        let b = other.release.get(i).copied().unwrap_or(0);
                        a.cmp(&b)
                    })
                    .find(|ordering| ordering.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then_with(|| self.phase.cmp(&other.phase))
            .then_with(|| self.tag.cmp(&other.tag))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// The lowest of `fixed_versions` strictly greater than `installed`, as written in the list
/// (trimmed). `None` when `installed` has no numeric version or no fixed version is greater.
/// Entries that do not parse are skipped.
pub fn choose_target_version(installed: &str, fixed_versions: &[String]) -> Option<String> {
    let installed = Version::parse(installed)?;
    fixed_versions
        .iter()
        .filter_map(|text| Version::parse(text).map(|version| (version, text.trim())))
        .filter(|(version, _)| *version > installed)
        .min_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, text)| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn numeric_components_compare_as_numbers() {
        assert!(v("1.2.10") > v("1.2.9"));
        assert!(v("1.10") > v("1.9.9"));
        assert!(v("10.0.0") > v("9.99.99"));
        assert_eq!(v("1.4"), v("1.4.0"));
        assert_eq!(v("v1.4.0"), v("1.4.0"));
        assert_eq!(v("1.4.0+build.7"), v("1.4.0"));
    }

    #[test]
    fn semver_prereleases_sort_before_the_release() {
        assert!(v("2.0.0") > v("2.0.0-rc.1"));
        assert!(v("2.0.0-rc.2") > v("2.0.0-rc.1"));
        assert!(v("2.0.0-rc.10") > v("2.0.0-rc.9"));
        assert!(v("2.0.0-beta.1") > v("2.0.0-alpha.3"));
        assert!(v("2.0.0-rc.1") > v("1.9.9"));
        assert!(v("1.0.0-alpha.1") > v("1.0.0-alpha"));
        assert!(v("1.0.0-rc.1").is_prerelease());
        assert!(!v("1.0.0").is_prerelease());
    }

    #[test]
    fn pep440_phases_order_dev_pre_release_post() {
        assert!(v("1.0.dev1") < v("1.0a1"));
        assert!(v("1.0a1") < v("1.0b1"));
        assert!(v("1.0b2") < v("1.0rc1"));
        assert!(v("1.0rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0.post1"));
        // `-N` is read the semver way (a pre-release), not as a PEP 440 implicit post release.
        assert!(v("1.0.0-0") < v("1.0.0"));
        assert!(v("1.0.post1") < v("1.0.1"));
        assert_eq!(v("1.0c1"), v("1.0rc1"));
        assert_eq!(v("1.0alpha1"), v("1.0a1"));
        assert!(v("1!0.5") > v("2.0"));
    }

    #[test]
    fn unparseable_versions_are_none() {
        assert!(Version::parse("").is_none());
        assert!(Version::parse("latest").is_none());
        assert!(Version::parse("*").is_none());
        assert!(Version::parse("x!1.0").is_none());
    }

    /// Each case: the installed version, the fixed versions an advisory lists, and the target
    /// chosen from them.
    const TARGET_CASES: &[(&str, &[&str], Option<&str>)] = &[
        // The target is the lowest fixed version above the installed one.
        (
            "1.3.5",
            &["2.0.1", "1.4.0", "1.3.5", "0.9.9"],
            Some("1.4.0"),
        ),
        (
            "1.2.0",
            &["2.0.1", "1.4.0", "1.3.5", "0.9.9"],
            Some("1.3.5"),
        ),
        (
            "1.4.0",
            &["2.0.1", "1.4.0", "1.3.5", "0.9.9"],
            Some("2.0.1"),
        ),
        // None when nothing is greater.
        ("1.2.10", &["1.2.9", "1.2.10"], None),
        ("3.0.0", &["1.2.9", "1.2.10"], None),
        ("1.0", &[], None),
        ("not-a-version", &["1.2.9", "1.2.10"], None),
        // Pre-releases order before their release; unparseable fixes are skipped.
        (
            "2.0.0-beta.3",
            &["garbage", " 2.0.0 ", "2.0.0-rc.1"],
            Some("2.0.0-rc.1"),
        ),
        (
            "2.0.0-rc.1",
            &["garbage", " 2.0.0 ", "2.0.0-rc.1"],
            Some("2.0.0"),
        ),
        ("4.2.1", &["4.2.10", "4.2.9"], Some("4.2.9")),
        // A Go scan reports `v`-prefixed versions while OSV lists fixes without the `v`;
        // either way round compares numerically. The text is returned as written, and
        // `bump_manifest` accepts both spellings.
        ("v0.14.0", &["0.17.0", "0.7.0"], Some("0.17.0")),
        ("0.14.0", &["v0.17.0"], Some("v0.17.0")),
        // Pseudo-versions order by their timestamp, and below any later release.
        (
            "v0.0.0-20210220033148-5ea612d1eb83",
            &["0.0.0-20220314234659-1baeb1ce4c0b", "0.1.0"],
            Some("0.0.0-20220314234659-1baeb1ce4c0b"),
        ),
        (
            "v20.10.7+incompatible",
            &["20.10.11+incompatible"],
            Some("20.10.11+incompatible"),
        ),
    ];

    #[test]
    fn targets_are_the_lowest_fixed_version_above_the_installed_one() {
        for (installed, fixed, expected) in TARGET_CASES {
            assert_eq!(
                choose_target_version(installed, &strings(fixed)),
                expected.map(str::to_owned),
                "{installed} with fixes {fixed:?}"
            );
        }
    }
}
