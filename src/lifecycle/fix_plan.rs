//! What one pull request fixes. The unit of a pull request is the package fix in a project, not
//! the advisory: every AFFECTED assessment of the same package goes into one plan, which picks
//! the lowest version that fixes all of them (or as many as a version can) and says which
//! remain. Also the rule that a pull request a maintainer closed is not reopened by a later
//! trigger for the same fix. Pure: no I/O, unit-tested here.

use chrono::{DateTime, Utc};

use super::{AssessmentId, RemediationStatus};
use crate::lockfile::FixedVersions;
use crate::patch::bump::{Version, choose_target_version};

/// One advisory on the package, as its finding and assessment state it.
#[derive(Debug, Clone, PartialEq)]
pub struct Advisory {
    pub assessment_id: AssessmentId,
    pub vulnerability_id: String,
    pub aliases: Vec<String>,
    pub severity: String,
    pub summary: String,
    pub installed_version: String,
    pub fixed_versions: Vec<String>,
}

impl Advisory {
    /// The lowest fixed version above the installed one, if the advisory names one.
    pub fn own_target(&self) -> Option<String> {
        choose_target_version(&self.installed_version, &self.fixed_versions)
    }
}

/// An advisory the chosen version does not fix, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Remaining {
    pub advisory: Advisory,
    pub reason: String,
}

/// The fix one job makes for a package.
#[derive(Debug, Clone, PartialEq)]
pub struct FixPlan {
    /// `None` when the triggering advisory names no fixed version (a code change, by the LLM).
    pub target_version: Option<String>,
    /// The advisories the change fixes, the triggering one first; every one is written back.
    pub covered: Vec<Advisory>,
    pub remaining: Vec<Remaining>,
}

impl FixPlan {
    pub fn covered_ids(&self) -> Vec<AssessmentId> {
        self.covered.iter().map(|a| a.assessment_id).collect()
    }

    /// The fixed versions the job works with: the plan's target, and per release line the
    /// version that fixes every covered advisory at once (what a copy in another line than
    /// the project's own must move to). `unplanned`: the trigger's own list, for a plan without
    /// a target (a code change).
    pub fn fixed_versions(&self, unplanned: &[String]) -> Vec<String> {
        let Some(target) = &self.target_version else {
            return unplanned.to_vec();
        };
        let lists: Vec<Vec<String>> = self
            .covered
            .iter()
            .map(|a| a.fixed_versions.clone())
            .collect();
        let mut versions = crate::lockfile::fixed_versions::fixing_all(&lists);
        if !versions.contains(target) {
            versions.push(target.clone());
        }
        versions.sort_by(|a, b| Version::parse(a).cmp(&Version::parse(b)));
        versions
    }

    /// The vulnerability ids the pull request lists, sorted, for comparing two plans.
    pub fn advisory_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .covered
            .iter()
            .map(|a| a.vulnerability_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Plans the fix of `trigger`'s package given the package's other AFFECTED advisories in the
/// project. Each advisory needs at least its own lowest fixed version; the highest of those
/// fixes them all, so it is the lowest version that does. Advisories with no known fixed
/// version remain, named. A trigger with no fixed version is fixed alone (the LLM writes a
/// code change; a version bump of the others would be a different change).
pub fn plan(trigger: &Advisory, others: &[Advisory]) -> FixPlan {
    let Some(own) = trigger.own_target() else {
        let remaining = others
            .iter()
            .filter(|a| a.assessment_id != trigger.assessment_id)
            .map(|other| Remaining {
                advisory: other.clone(),
                reason: match other.own_target() {
                    Some(version) => {
                        format!("fixed by a version bump to {version}, not by this code change")
                    }
                    None => no_fixed_version(other),
                },
            })
            .collect();
        return FixPlan {
            target_version: None,
            covered: vec![trigger.clone()],
            remaining,
        };
    };
    let mut target = (Version::parse(&own), own);
    let mut covered = vec![trigger.clone()];
    let mut remaining = Vec::new();
    for other in others
        .iter()
        .filter(|a| a.assessment_id != trigger.assessment_id)
    {
        match other.own_target() {
            Some(needed) => {
                let parsed = Version::parse(&needed);
                if let (Some(current), Some(candidate)) = (&target.0, &parsed)
                    && candidate > current
                {
                    target = (parsed, needed);
                }
                covered.push(other.clone());
            }
            None => remaining.push(Remaining {
                advisory: other.clone(),
                reason: no_fixed_version(other),
            }),
        }
    }
    FixPlan {
        target_version: Some(fixed_in_every_line(&covered, target.1)),
        covered,
        remaining,
    }
}

/// `target` raised until no advisory's fix in its release line is above it: with one advisory
/// fixed in 1.0.3 and 1.1.2 and another in 1.1.1, 1.1.1 is not the first one's fix in its line,
/// 1.1.2 is. Each step is to a strictly higher fix, of finitely many, so it ends.
fn fixed_in_every_line(advisories: &[Advisory], mut target: String) -> String {
    let each: Vec<FixedVersions> = advisories
        .iter()
        .map(|a| FixedVersions::of_advisory(&a.fixed_versions))
        .filter(|f| f.versions().next().is_some())
        .collect();
    loop {
        let Some(current) = Version::parse(&target) else {
            return target;
        };
        let next = each
            .iter()
            .filter_map(|f| f.for_copy(&target))
            .filter_map(|v| Version::parse(v).map(|parsed| (parsed, v)))
            .filter(|(parsed, _)| *parsed > current)
            .max_by(|a, b| a.0.cmp(&b.0));
        match next {
            Some((_, version)) => target = version.to_owned(),
            None => return target,
        }
    }
}

/// One package's part of a repository-grouped fix.
#[derive(Debug, Clone, PartialEq)]
pub struct PackagePlan {
    pub package: String,
    pub plan: FixPlan,
}

/// Plans one fix per package for every AFFECTED advisory of an ecosystem in the project
/// (`worker.group = "repository"`), by package name (so the same set of fixes reads the same
/// whichever advisory triggered it), each planned as [`plan`] plans it (the trigger's package
/// around the trigger). Only version bumps are grouped: a package none of whose
/// advisories names a fixed version is left out (a code change gets a pull request of its own).
pub fn plan_repository(
    trigger_package: &str,
    trigger: &Advisory,
    advisories: &[(String, Advisory)],
) -> Vec<PackagePlan> {
    let mut packages: Vec<&str> = advisories.iter().map(|(p, _)| p.as_str()).collect();
    packages.push(trigger_package);
    packages.sort_unstable();
    packages.dedup();
    packages
        .into_iter()
        .filter_map(|package| {
            let mine: Vec<Advisory> = advisories
                .iter()
                .filter(|(p, _)| p == package)
                .map(|(_, a)| a.clone())
                .collect();
            let first = if package == trigger_package {
                trigger.clone()
            } else {
                mine.iter().find(|a| a.own_target().is_some())?.clone()
            };
            let plan = plan(&first, &mine);
            plan.target_version.is_some().then(|| PackagePlan {
                package: package.to_owned(),
                plan,
            })
        })
        .collect()
}

/// The plans of a grouped fix as one: every covered advisory, every remaining one, and a
/// target naming each package's version ("lodash 4.17.21, minimist 1.2.6").
pub fn merge(plans: &[PackagePlan]) -> FixPlan {
    let target = plans
        .iter()
        .filter_map(|p| {
            p.plan
                .target_version
                .as_ref()
                .map(|v| format!("{} {v}", p.package))
        })
        .collect::<Vec<_>>()
        .join(", ");
    FixPlan {
        target_version: Some(target),
        covered: plans.iter().flat_map(|p| p.plan.covered.clone()).collect(),
        remaining: plans
            .iter()
            .flat_map(|p| p.plan.remaining.clone())
            .collect(),
    }
}

fn no_fixed_version(advisory: &Advisory) -> String {
    format!(
        "no fixed version above the installed {} is known (fixed versions: {})",
        advisory.installed_version,
        if advisory.fixed_versions.is_empty() {
            "none".to_owned()
        } else {
            advisory.fixed_versions.join(", ")
        }
    )
}

/// The advisories the package's open pull request fixes (`listed`) that this plan would drop
/// while they are still AFFECTED: a code change replacing a version bump, or the reverse.
/// Rebuilding the branch then would silently undo a fix, so such a job must not push.
pub fn would_drop(listed: &[String], plan: &FixPlan) -> Vec<String> {
    plan.remaining
        .iter()
        .map(|r| r.advisory.vulnerability_id.clone())
        .filter(|id| listed.contains(id))
        .collect()
}

/// What the database says about a package's pull request, for [`closed_refusal`].
#[derive(Debug, Clone, Copy)]
pub struct PullRequestRecord<'a> {
    pub state: Option<RemediationStatus>,
    pub target_version: Option<&'a str>,
    pub pr_url: Option<&'a str>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Why a fix to `wanted` must not be made: the package's pull request for the same (or a
/// higher) version was closed without merging by a person, and opening it again would undo
/// their decision. A fix to a higher version than the closed one is a different change and
/// is allowed. `None`: go ahead.
pub fn closed_refusal(
    package: &str,
    record: &PullRequestRecord<'_>,
    wanted: Option<&str>,
) -> Option<String> {
    if record.state != Some(RemediationStatus::PrClosed) {
        return None;
    }
    let higher = match (
        wanted.and_then(Version::parse),
        record.target_version.and_then(Version::parse),
    ) {
        (Some(wanted), Some(closed)) => wanted > closed,
        _ => false,
    };
    if higher {
        return None;
    }
    let when = record
        .closed_at
        .map(|at| format!(" on {}", at.format("%Y-%m-%d")))
        .unwrap_or_default();
    let which = record
        .pr_url
        .map(|url| format!(" ({url})"))
        .unwrap_or_default();
    let version = record
        .target_version
        .map(|v| format!(" to {v}"))
        .unwrap_or_default();
    Some(format!(
        "the pull request fixing {package}{version}{which} was closed without merging{when}; \
         it is not opened again: reopen it on the forge, or trigger a fix to a different version"
    ))
}

/// Where a pull request stands on the forge, as a webhook or the reconciler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedState {
    Open,
    /// Open, but it no longer merges cleanly into its base (the base moved): the fix is
    /// recreated on the new base (only the reconciler sees this; the state stays `PR_OPEN`).
    Conflicting,
    Merged(Option<DateTime<Utc>>),
    Closed(Option<DateTime<Utc>>),
}

impl ObservedState {
    pub fn status(self) -> RemediationStatus {
        match self {
            ObservedState::Open | ObservedState::Conflicting => RemediationStatus::PrOpen,
            ObservedState::Merged(_) => RemediationStatus::PrMerged,
            ObservedState::Closed(_) => RemediationStatus::PrClosed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advisory(id: &str, installed: &str, fixed: &[&str]) -> Advisory {
        Advisory {
            assessment_id: AssessmentId::new_random(),
            vulnerability_id: id.to_owned(),
            aliases: Vec::new(),
            severity: "HIGH".to_owned(),
            summary: String::new(),
            installed_version: installed.to_owned(),
            fixed_versions: fixed.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_jobs_fixed_versions_keep_each_lines_fix_and_the_target_first_above_installed() {
        let cases = [
            (
                vec![
                    advisory("A", "1.0.1", &["0.9.5", "1.0.3"]),
                    advisory("B", "1.0.1", &["0.9.7", "1.0.1", "1.0.2"]),
                ],
                vec!["0.9.7", "1.0.3"],
            ),
            (
                vec![
                    advisory("A", "1.0.1", &["1.0.3", "1.1.2"]),
                    advisory("B", "1.0.1", &["1.1.5"]),
                ],
                vec!["1.1.5"],
            ),
            (
                // 1.1.1 is B's fix, not A's in that line: both need 1.1.2.
                vec![
                    advisory("A", "1.0.1", &["1.0.3", "1.1.2"]),
                    advisory("B", "1.0.1", &["1.1.1"]),
                ],
                vec!["1.1.2"],
            ),
            (
                vec![
                    advisory("A", "1.0.1", &["1.0.3"]),
                    advisory("B", "1.0.1", &["2.0.0"]),
                ],
                vec!["2.0.0"],
            ),
        ];
        for (advisories, expected) in cases {
            let plan = plan(&advisories[0], &advisories);
            let versions = plan.fixed_versions(&[]);
            assert_eq!(versions, expected, "{advisories:?}");
            let target = plan.target_version.unwrap();
            assert!(versions.contains(&target), "{target} in {versions:?}");
        }
        // The scanner calls 1.0.1 affected by B although B's list has 1.0.0: the plan goes by
        // each advisory's own lowest fix above the installed version (2.0.0), and the job is
        // given that target (`RemediationTarget::planned_version`), not the lowest above
        // installed in the list.
        let advisories = [
            advisory("A", "1.0.1", &["1.0.3"]),
            advisory("B", "1.0.1", &["1.0.0", "2.0.0"]),
        ];
        let scanned = plan(&advisories[0], &advisories);
        assert_eq!(scanned.target_version.as_deref(), Some("2.0.0"));
        assert_eq!(scanned.fixed_versions(&[]), ["1.0.3", "2.0.0"]);
        let code_change = advisory("C", "1.0.1", &[]);
        let unplanned = ["x".to_owned()];
        assert_eq!(
            plan(&code_change, &[]).fixed_versions(&unplanned),
            unplanned
        );
    }

    #[test]
    fn the_highest_needed_version_fixes_every_advisory() {
        let trigger = advisory("GHSA-a", "4.17.20", &["4.17.21"]);
        let higher = advisory("GHSA-b", "4.17.20", &["3.10.2", "4.17.23"]);
        let same = advisory("GHSA-c", "4.17.20", &["4.17.21"]);
        let plan = plan(&trigger, &[higher.clone(), same.clone(), trigger.clone()]);
        assert_eq!(plan.target_version.as_deref(), Some("4.17.23"));
        assert_eq!(plan.covered, vec![trigger, higher, same]);
        assert!(plan.remaining.is_empty());
        assert_eq!(plan.advisory_ids(), ["GHSA-a", "GHSA-b", "GHSA-c"]);
    }

    #[test]
    fn an_advisory_without_a_fixed_version_remains_named() {
        let trigger = advisory("GHSA-a", "1.2.0", &["1.2.5"]);
        let unfixed = advisory("GHSA-x", "1.2.0", &[]);
        let plan = plan(&trigger, std::slice::from_ref(&unfixed));
        assert_eq!(plan.target_version.as_deref(), Some("1.2.5"));
        assert_eq!(plan.covered_ids(), vec![trigger.assessment_id]);
        assert_eq!(plan.remaining.len(), 1);
        assert_eq!(plan.remaining[0].advisory, unfixed);
        assert!(
            plan.remaining[0].reason.contains("no fixed version"),
            "{:?}",
            plan.remaining
        );
    }

    #[test]
    fn a_trigger_without_a_fixed_version_is_fixed_alone() {
        let trigger = advisory("GHSA-a", "1.2.0", &[]);
        let other = advisory("GHSA-b", "1.2.0", &["1.3.0"]);
        let plan = plan(&trigger, std::slice::from_ref(&other));
        assert_eq!(plan.target_version, None);
        assert_eq!(plan.covered, vec![trigger]);
        assert_eq!(plan.remaining[0].advisory, other);
        assert!(
            plan.remaining[0].reason.contains("version bump to 1.3.0"),
            "{:?}",
            plan.remaining
        );
        // An open pull request bumping the version for GHSA-b must not be replaced by it.
        assert_eq!(would_drop(&["GHSA-b".to_owned()], &plan), ["GHSA-b"]);
    }

    #[test]
    fn a_plan_covering_everything_listed_drops_nothing() {
        let trigger = advisory("GHSA-a", "1.2.0", &["1.2.5"]);
        let other = advisory("GHSA-b", "1.2.0", &["1.3.0"]);
        let plan = plan(&trigger, &[other]);
        let listed = ["GHSA-b".to_owned(), "GHSA-gone".to_owned()];
        assert!(
            would_drop(&listed, &plan).is_empty(),
            "a listed advisory no longer AFFECTED may go"
        );
    }

    #[test]
    fn a_repository_plan_has_one_bump_per_package_by_name() {
        let trigger = advisory("GHSA-l1", "4.17.20", &["4.17.21"]);
        let all = vec![
            ("lodash".to_owned(), trigger.clone()),
            (
                "lodash".to_owned(),
                advisory("GHSA-l2", "4.17.20", &["4.17.22"]),
            ),
            (
                "axios".to_owned(),
                advisory("GHSA-a1", "0.21.0", &["0.21.2"]),
            ),
            ("minimist".to_owned(), advisory("GHSA-m1", "1.2.0", &[])),
        ];
        let plans = plan_repository("lodash", &trigger, &all);
        let summary: Vec<(&str, Option<&str>, usize)> = plans
            .iter()
            .map(|p| {
                (
                    p.package.as_str(),
                    p.plan.target_version.as_deref(),
                    p.plan.covered.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("axios", Some("0.21.2"), 1), ("lodash", Some("4.17.22"), 2)]
        );
        assert_eq!(
            plans[1].plan.covered[0], trigger,
            "the trigger leads its package's plan"
        );
        let merged = merge(&plans);
        assert_eq!(
            merged.target_version.as_deref(),
            Some("axios 0.21.2, lodash 4.17.22")
        );
        assert_eq!(merged.advisory_ids(), ["GHSA-a1", "GHSA-l1", "GHSA-l2"]);
    }

    fn closed<'a>(version: Option<&'a str>) -> PullRequestRecord<'a> {
        PullRequestRecord {
            state: Some(RemediationStatus::PrClosed),
            target_version: version,
            pr_url: Some("https://forge.example/acme/web/pull/7"),
            closed_at: "2026-11-30T10:00:00Z".parse().ok(),
        }
    }

    #[test]
    fn a_closed_pull_request_is_not_reopened_for_the_same_or_a_lower_version() {
        for wanted in [Some("4.17.21"), Some("4.17.19"), None] {
            let refusal =
                closed_refusal("lodash", &closed(Some("4.17.21")), wanted).expect("refused");
            assert!(
                refusal.contains("closed without merging on 2026-11-30"),
                "{refusal}"
            );
            assert!(refusal.contains("pull/7"), "{refusal}");
        }
        assert_eq!(
            closed_refusal("lodash", &closed(Some("4.17.21")), Some("4.17.22")),
            None,
            "a higher version is a different fix"
        );
    }

    #[test]
    fn only_a_closed_pull_request_refuses() {
        for state in [
            None,
            Some(RemediationStatus::PrOpen),
            Some(RemediationStatus::PrMerged),
            Some(RemediationStatus::BranchPushed),
        ] {
            let record = PullRequestRecord {
                state,
                ..closed(Some("1.0.0"))
            };
            assert_eq!(closed_refusal("p", &record, Some("1.0.0")), None);
        }
    }
}
