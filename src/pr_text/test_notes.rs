//! The "Tests" section of a pull request: the project's own tests on the default branch and on
//! the branch (`crate::verify`). Test names, commands and output come from the repository and
//! its test code, so names are escaped like every other outside text, commands are code spans
//! and output is a fenced block that the output itself cannot close.

use std::fmt::Write as _;

use super::escape;
use crate::verify::report::{RunSummary, TestOutcome, TestsReport};

/// Regressions quoted before the rest are counted.
const MAX_QUOTED: usize = 10;
/// Pre-existing failures named before the rest are counted.
const MAX_NAMED: usize = 30;

/// The section, from its heading.
pub fn section(report: &TestsReport) -> String {
    let mut out = String::from("### Tests\n\n");
    match report.outcome {
        TestOutcome::NoTests => {
            let _ = writeln!(
                out,
                "No tests were run: {}.",
                escape(report.reason.as_deref().unwrap_or("no test command found"))
            );
            return out;
        }
        TestOutcome::NotRun => {
            let _ = writeln!(
                out,
                "**Draft:** {}.",
                escape(
                    report
                        .reason
                        .as_deref()
                        .unwrap_or("the tests could not run")
                )
            );
            return out;
        }
        TestOutcome::Passed | TestOutcome::Regressed => {}
    }
    let _ = writeln!(out, "{}\n", how_they_ran(report));
    runs(&mut out, report);
    regressions(&mut out, report);
    pre_existing_failures(&mut out, report);
    out
}

/// "`npm test` (from package.json scripts.test), after `npm ci`, in Remediator's sandbox: ...".
fn how_they_ran(report: &TestsReport) -> String {
    let command = report.command.as_deref().unwrap_or("");
    let install = report
        .install
        .as_deref()
        .map(|i| format!(", after {}", code_span(i)))
        .unwrap_or_default();
    let source = report
        .source
        .as_deref()
        .map(|s| format!(" (from {})", escape(s)))
        .unwrap_or_default();
    format!(
        "{}{source}{install}, in Remediator's sandbox: the install reaches the package \
         registries only, the tests run with no network and no secret.",
        code_span(command)
    )
}

/// Both runs' summaries, the comparison's note and the repair rounds.
fn runs(out: &mut String, report: &TestsReport) {
    if let Some(main) = &report.main {
        let _ = writeln!(out, "- **Default branch:** {}", summary(main));
    }
    if let Some(branch) = &report.branch {
        let _ = writeln!(out, "- **This branch:** {}", summary(branch));
    }
    if let Some(note) = &report.note {
        let _ = writeln!(out, "\n{}.", escape(note));
    }
    if !report.repair_rounds.is_empty() {
        let _ = writeln!(out, "\n{}", repair_line(report));
    }
}

/// The regressions, each with its output (the first [`MAX_QUOTED`]), or that there is none.
fn regressions(out: &mut String, report: &TestsReport) {
    if report.regressions.is_empty() {
        let _ = writeln!(
            out,
            "\nNo test that passes on the default branch fails with this change."
        );
        return;
    }
    let _ = writeln!(
        out,
        "\n**Draft:** these tests pass on the default branch and fail with this change:\n"
    );
    for regression in report.regressions.iter().take(MAX_QUOTED) {
        let _ = writeln!(out, "**{}**\n", escape(&regression.name));
        let _ = writeln!(out, "{}", code_block(&regression.output));
    }
    if report.regressions.len() > MAX_QUOTED {
        let _ = writeln!(
            out,
            "… and {} more.\n",
            report.regressions.len() - MAX_QUOTED
        );
    }
}

/// The tests already failing on the default branch, the first [`MAX_NAMED`] named.
fn pre_existing_failures(out: &mut String, report: &TestsReport) {
    if report.pre_existing_failures.is_empty() {
        return;
    }
    let names: Vec<String> = report
        .pre_existing_failures
        .iter()
        .take(MAX_NAMED)
        .map(|n| escape(n))
        .collect();
    let more = match report.pre_existing_failures.len() > MAX_NAMED {
        true => format!(
            " and {} more",
            report.pre_existing_failures.len() - MAX_NAMED
        ),
        false => String::new(),
    };
    let _ = writeln!(
        out,
        "\nAlready failing on the default branch (not caused by this change; not \
         blocking): {}{more}.",
        names.join(", ")
    );
}

/// "Repair rounds: 2 (the LLM edited src/a.js; refused: 1); the tests pass after the repair."
fn repair_line(report: &TestsReport) -> String {
    let rounds = &report.repair_rounds;
    let mut edited: Vec<String> = rounds
        .iter()
        .flat_map(|r| r.edited.iter().map(|p| escape(p)))
        .collect();
    edited.dedup();
    let refused = rounds.iter().map(|r| r.refused.len()).sum::<usize>();
    let edited = match edited.is_empty() {
        true => "no edit was accepted".to_owned(),
        false => format!("the LLM edited {}", edited.join(", ")),
    };
    let refused = match refused {
        0 => String::new(),
        n => format!("; {n} answer(s) refused"),
    };
    let outcome = match report.repaired {
        true => "no test that passes on the default branch fails after the repair, and the \
                 commit carries it"
            .to_owned(),
        false => "the tests below still fail".to_owned(),
    };
    format!(
        "**Repair rounds: {}** ({edited}{refused}): {outcome}.",
        rounds.len()
    )
}

/// `3 passed, 0 failed: passed (1.2 s)`
fn summary(run: &RunSummary) -> String {
    let cached = match run.cached {
        true => ", from an earlier job on the same commit",
        false => "",
    };
    format!(
        "{} passed, {} failed: {} ({:.1} s{cached})",
        run.passed,
        run.failed,
        escape(&run.status),
        run.duration_ms as f64 / 1000.0
    )
}

/// Text no control character or bidi override survives in.
fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| {
            (!c.is_control() || *c == '\n')
                && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

/// The longest run of backticks in `text`.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// One line of outside text as a code span, whatever backticks it holds.
fn code_span(text: &str) -> String {
    let text = plain(text).replace('\n', " ");
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    // A space keeps a backtick at either end from joining the fence (and is not shown).
    let pad = match text.starts_with('`') || text.ends_with('`') {
        true => " ",
        false => "",
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Outside text as a fenced code block that it cannot close: the fence is longer than any
/// run of backticks in it.
fn code_block(text: &str) -> String {
    let text = plain(text);
    let fence = "`".repeat((longest_backtick_run(&text) + 1).max(3));
    format!("{fence}text\n{}\n{fence}\n", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pr_text::tests::assert_contains_all;
    use crate::verify::compare::Regression;

    #[test]
    fn outside_text_cannot_leave_its_code_block_or_mention_anyone() {
        let report = TestsReport {
            outcome: TestOutcome::Regressed,
            reason: None,
            command: Some("npm test `x`".to_owned()),
            install: Some("npm ci".to_owned()),
            source: Some("package.json scripts.test".to_owned()),
            dir: Some(String::new()),
            main: None,
            branch: None,
            compared_by: Some(crate::verify::compare::ComparedBy::Tests),
            regressions: vec![Regression {
                name: "formats @owner [x](http://evil)".to_owned(),
                output: "```\n# Heading @owner\n````\nerror\u{202E}".to_owned(),
            }],
            pre_existing_failures: vec!["old *one*".to_owned()],
            note: None,
            repair_rounds: Vec::new(),
            repaired: false,
            duration_ms: 5,
        };
        assert_contains_all(
            &section(&report),
            &[
                "`` npm test `x` `` (from",
                "after `npm ci`, in",
                "**formats \\@\u{200B}owner \\[x\\](http\\:\\/\\/evil)**",
                "`````text\n```\n# Heading @owner\n````\nerror\n`````\n",
                "not blocking): old \\*one\\*.",
            ],
        );
    }
}
