//! `remediation_confidence`: how sure the finished job is that its pull request fixes the
//! vulnerability and keeps the project working, from what the job itself proved.
//!
//! It starts from who wrote the change (a deterministic bump: 1; a model: the confidence it
//! gave) and is multiplied by one factor for what the lock step proved and one for what the
//! project's tests said. Each factor below 1 is named in `output.remediation_confidence.reasons`,
//! so a reader sees why a fix scored 0.6 and what would raise it.
//!
//! | evidence | factor |
//! | --- | --- |
//! | lock files read back, no vulnerable version left | 1 |
//! | no lock file read (the manifests were checked instead) | 0.9 |
//! | a lock file that is there was not updated | 0.8 |
//! | a vulnerable version is still resolved | 0.3 |
//! | the tests passed on the branch | 1 |
//! | they passed after the model repaired what the fix broke | 0.8 |
//! | no tests found, or the test step is turned off | 0.8 |
//! | the tests could not run | 0.6 |
//! | a test that passed on main fails on the branch | 0.25 |

use serde::Serialize;

use crate::lockfile::Verification;
use crate::verify::report::{TestOutcome, TestsReport};

/// The score written to the assessments, and why it is below 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confidence {
    /// From 0 to 1, two decimals.
    pub value: f64,
    /// One line per factor below 1, in the order they were applied.
    pub reasons: Vec<String>,
}

/// What the job proved, read by [`assess`].
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The model's own confidence; `None` for a deterministic change.
    pub author: Option<f64>,
    /// The lock step's check of each package the change moved (`None`: no manifest changed).
    pub locks: &'a [Option<&'a Verification>],
    /// The test step's report (`None`: the step is turned off).
    pub tests: Option<&'a TestsReport>,
}

pub fn assess(evidence: Evidence<'_>) -> Confidence {
    let mut value = 1.0;
    let mut reasons = Vec::new();
    let mut apply = |factor: f64, reason: String| {
        value *= factor;
        reasons.push(format!("{reason} (x{factor})"));
    };
    if let Some(model) = evidence.author {
        apply(
            model.clamp(0.0, 1.0),
            "the model's own confidence".to_owned(),
        );
    }
    if let Some((factor, reason)) = evidence.locks.iter().filter_map(lock_factor).reduce(worst) {
        apply(factor, reason);
    }
    if let Some((factor, reason)) = test_factor(evidence.tests) {
        apply(factor, reason);
    }
    Confidence {
        value: (value * 100.0).round() / 100.0,
        reasons,
    }
}

fn worst(a: (f64, String), b: (f64, String)) -> (f64, String) {
    if b.0 < a.0 { b } else { a }
}

/// The lock step's factor, when below 1.
fn lock_factor(verification: &Option<&Verification>) -> Option<(f64, String)> {
    let Some(v) = verification else {
        return None;
    };
    if v.vulnerable_left > 0 {
        Some((
            0.3,
            format!("{} vulnerable copies still resolved", v.vulnerable_left),
        ))
    } else if !v.not_updated.is_empty() {
        Some((
            0.8,
            format!("{} lock files not updated", v.not_updated.len()),
        ))
    } else if v.lock_files.is_empty() {
        Some((0.9, "no lock file read back".to_owned()))
    } else {
        None
    }
}

/// The test step's factor, when below 1.
fn test_factor(tests: Option<&TestsReport>) -> Option<(f64, String)> {
    let Some(report) = tests else {
        return Some((
            0.8,
            "the project's tests were not run (verify is off)".to_owned(),
        ));
    };
    match report.outcome {
        TestOutcome::Passed if report.repaired => Some((
            0.8,
            "the tests pass only after the model's repair".to_owned(),
        )),
        TestOutcome::Passed => None,
        TestOutcome::NoTests => Some((0.8, "no tests found".to_owned())),
        TestOutcome::NotRun => Some((0.6, "the tests could not run".to_owned())),
        TestOutcome::Regressed => Some((
            0.25,
            format!("{} tests that pass on main fail", report.regressions.len()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: TestOutcome, repaired: bool) -> TestsReport {
        let mut report = TestsReport::no_tests("x".to_owned(), 0);
        report.outcome = outcome;
        report.repaired = repaired;
        report
    }

    fn locked(lock_files: usize, vulnerable_left: usize, not_updated: usize) -> Verification {
        Verification {
            lock_files: vec!["package-lock.json".to_owned(); lock_files],
            vulnerable_left,
            not_updated: vec!["yarn.lock: no yarn".to_owned(); not_updated],
            ..Verification::default()
        }
    }

    #[test]
    fn a_checked_bump_whose_tests_pass_scores_one_with_no_reason() {
        let lock = locked(1, 0, 0);
        let passed = report(TestOutcome::Passed, false);
        let got = assess(Evidence {
            author: None,
            locks: &[Some(&lock)],
            tests: Some(&passed),
        });
        assert_eq!(
            got,
            Confidence {
                value: 1.0,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn each_kind_of_evidence_lowers_the_score_by_its_factor_and_says_why() {
        let clean = locked(1, 0, 0);
        let cases = [
            (
                "repaired",
                None,
                locked(1, 0, 0),
                Some(report(TestOutcome::Passed, true)),
                0.8,
                "the tests pass only after the model's repair (x0.8)",
            ),
            (
                "no tests",
                None,
                clean.clone(),
                Some(report(TestOutcome::NoTests, false)),
                0.8,
                "no tests found (x0.8)",
            ),
            (
                "verify off",
                None,
                clean.clone(),
                None,
                0.8,
                "the project's tests were not run (verify is off) (x0.8)",
            ),
            (
                "not run",
                None,
                clean.clone(),
                Some(report(TestOutcome::NotRun, false)),
                0.6,
                "the tests could not run (x0.6)",
            ),
            (
                "regressed",
                None,
                clean.clone(),
                Some(report(TestOutcome::Regressed, false)),
                0.25,
                "0 tests that pass on main fail (x0.25)",
            ),
            (
                "no lock",
                None,
                locked(0, 0, 0),
                Some(report(TestOutcome::Passed, false)),
                0.9,
                "no lock file read back (x0.9)",
            ),
            (
                "not updated",
                None,
                locked(1, 0, 1),
                Some(report(TestOutcome::Passed, false)),
                0.8,
                "1 lock files not updated (x0.8)",
            ),
            (
                "vulnerable left",
                None,
                locked(1, 2, 0),
                Some(report(TestOutcome::Passed, false)),
                0.3,
                "2 vulnerable copies still resolved (x0.3)",
            ),
            (
                "model",
                Some(0.7),
                clean.clone(),
                Some(report(TestOutcome::Passed, false)),
                0.7,
                "the model's own confidence (x0.7)",
            ),
        ];
        for (name, author, lock, tests, value, reason) in cases {
            let got = assess(Evidence {
                author,
                locks: &[Some(&lock)],
                tests: tests.as_ref(),
            });
            assert_eq!(got.value, value, "{name}");
            assert_eq!(got.reasons, vec![reason.to_owned()], "{name}");
        }
    }

    #[test]
    fn factors_multiply_and_the_worst_package_speaks_for_a_group() {
        let clean = locked(1, 0, 0);
        let stale = locked(1, 0, 1);
        let no_lock = locked(0, 0, 0);
        let regressed = report(TestOutcome::Regressed, false);
        let got = assess(Evidence {
            author: Some(0.9),
            locks: &[Some(&clean), Some(&no_lock), None, Some(&stale)],
            tests: Some(&regressed),
        });
        // 0.9 x 0.8 x 0.25 = 0.18: the stale lock (0.8) outweighs the unread one (0.9).
        assert_eq!(got.value, 0.18);
        assert_eq!(got.reasons.len(), 3, "{:?}", got.reasons);
        assert!(
            got.reasons[1].starts_with("1 lock files not updated"),
            "{:?}",
            got.reasons
        );
    }

    #[test]
    fn a_model_confidence_out_of_range_is_held_to_zero_to_one() {
        let got = assess(Evidence {
            author: Some(3.0),
            locks: &[],
            tests: Some(&report(TestOutcome::Passed, false)),
        });
        assert_eq!(got.value, 1.0);
    }
}
