//! Main against the branch. A regression is a test that passed on main and fails (or no longer
//! runs) on the branch, or, where the runner names no tests, a test command that succeeded on
//! main and fails on the branch, or an install that works on main and fails on the branch. A
//! test that fails on both is a pre-existing failure: named, never blocking.

use serde::Serialize;

use super::run::{Ended, TestRun};

/// A test that passed on main and fails on the branch, with its decisive output there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Regression {
    pub name: String,
    pub output: String,
}

/// What main's and the branch's runs were compared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparedBy {
    /// The runner named its tests: test by test.
    Tests,
    /// No test was named: the command's exit status.
    ExitStatus,
}

/// How main and the branch were compared, and what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub by: ComparedBy,
    pub regressions: Vec<Regression>,
    /// Tests (or the whole command) that fail on main too.
    pub pre_existing_failures: Vec<String>,
    /// What limits the comparison (the install fails on main too), in words.
    pub note: Option<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// Compares the branch's run with main's; `command` names the whole test command where no
/// test is named.
pub fn compare(main: &TestRun, branch: &TestRun, command: &str) -> Comparison {
    let mut comparison = Comparison {
        by: ComparedBy::ExitStatus,
        regressions: Vec::new(),
        pre_existing_failures: Vec::new(),
        note: None,
    };
    match (main.ended, branch.ended) {
        (Ended::InstallFailed(status), Ended::InstallFailed(_)) => {
            comparison.note = Some(format!(
                "the install fails on the default branch too ({status}): no test ran on either"
            ));
            comparison
                .pre_existing_failures
                .push("the install".to_owned());
            return comparison;
        }
        (Ended::InstallFailed(status), Ended::Tests(_)) => {
            comparison.note = Some(format!(
                "the install fails on the default branch ({status}): nothing to compare with"
            ));
            return comparison;
        }
        (Ended::Tests(_), Ended::InstallFailed(status)) => {
            comparison.regressions.push(Regression {
                name: format!("the install ({status} on this branch; it works on main)"),
                output: branch.output.clone(),
            });
            return comparison;
        }
        (Ended::Tests(_), Ended::Tests(_)) => {}
    }
    if main.cases.is_empty() || branch.cases.is_empty() {
        match (main.passed(), branch.passed()) {
            (true, false) => comparison.regressions.push(Regression {
                name: format!("{command} ({})", status_of(branch)),
                output: branch.output.clone(),
            }),
            (false, false) => comparison.pre_existing_failures.push(command.to_owned()),
            _ => {}
        }
        return comparison;
    }
    comparison.by = ComparedBy::Tests;
    for before in &main.cases {
        let after = branch.cases.iter().find(|c| c.name == before.name);
        match (before.passed, after) {
            (true, Some(after)) if !after.passed => comparison.regressions.push(Regression {
                name: before.name.clone(),
                output: after.output.clone(),
            }),
            (true, None) if !branch.passed() => comparison.regressions.push(Regression {
                name: format!("{} (did not run on this branch)", before.name),
                output: branch.output.clone(),
            }),
            (false, Some(after)) if !after.passed => {
                comparison.pre_existing_failures.push(before.name.clone())
            }
            _ => {}
        }
    }
    // The runner named its tests, yet the command fails on the branch only, with every test
    // that ran on main passing: something outside the named tests broke (a test file that no
    // longer loads, a coverage threshold).
    if comparison.regressions.is_empty() && main.passed() && !branch.passed() {
        comparison.regressions.push(Regression {
            name: format!("{command} ({})", status_of(branch)),
            output: branch.output.clone(),
        });
    }
    comparison
}

fn status_of(run: &TestRun) -> String {
    match run.ended {
        Ended::InstallFailed(status) | Ended::Tests(status) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::ToolStatus;
    use crate::verify::results::TestCase;

    fn run(status: i32, cases: &[(&str, bool)]) -> TestRun {
        TestRun {
            ended: Ended::Tests(ToolStatus::Exited(status)),
            cases: cases
                .iter()
                .map(|(name, passed)| TestCase {
                    name: (*name).to_owned(),
                    passed: *passed,
                    output: match passed {
                        true => String::new(),
                        false => format!("{name} broke"),
                    },
                })
                .collect(),
            output: "the end of the log".to_owned(),
            duration_ms: 1,
            downloads: None,
        }
    }

    #[test]
    fn regressions_are_tests_that_passed_on_main_only() {
        let main = run(1, &[("a", true), ("b", true), ("old", false)]);
        let branch = run(1, &[("a", true), ("b", false), ("old", false)]);
        let c = compare(&main, &branch, "npm test");
        assert_eq!(c.by, ComparedBy::Tests);
        assert_eq!(
            c.regressions,
            [Regression {
                name: "b".into(),
                output: "b broke".into()
            }]
        );
        assert_eq!(c.pre_existing_failures, ["old"]);
        // Only the old failure: nothing regressed.
        let c = compare(
            &main,
            &run(1, &[("a", true), ("b", true), ("old", false)]),
            "t",
        );
        assert!(!c.regressed(), "{c:?}");
        assert_eq!(c.pre_existing_failures, ["old"]);
    }

    #[test]
    fn without_names_the_exit_status_decides() {
        let c = compare(&run(0, &[]), &run(1, &[]), "make test");
        assert_eq!(c.by, ComparedBy::ExitStatus);
        assert_eq!(c.regressions[0].name, "make test (exit status 1)");
        assert_eq!(c.regressions[0].output, "the end of the log");
        let c = compare(&run(1, &[]), &run(1, &[]), "make test");
        assert!(!c.regressed());
        assert_eq!(c.pre_existing_failures, ["make test"]);
    }

    #[test]
    fn an_install_that_breaks_on_the_branch_is_a_regression() {
        let mut broken = run(1, &[]);
        broken.ended = Ended::InstallFailed(ToolStatus::Exited(1));
        let c = compare(&run(0, &[("a", true)]), &broken, "npm test");
        assert!(c.regressed());
        assert!(c.regressions[0].name.starts_with("the install"));
        let c = compare(&broken, &broken, "npm test");
        assert!(!c.regressed());
        assert!(c.note.is_some());
    }
}
