//! The tests a run names and how each ended, read from the runner's output: node's test runner
//! (TAP, its default when the output is not a terminal, `ok 1 - name` / `not ok 2 - name` and
//! a YAML block saying why; and its `spec` reporter, `✔ name` / `✖ name`), and pytest's `-rA`
//! summary (`PASSED path::name`, `FAILED path::name - why`, `ERROR path`), `cargo test`
//! (`test path::name ... ok`, `... FAILED` and the failure's `---- path::name stdout ----`
//! block), and `go test -v` (`--- PASS: TestX`, `--- FAIL: TestX` and the lines the test
//! logged under its `=== RUN`, named with their package); and JUnit XML printed to the output
//! (`junit`: node's `--test-reporter=junit`, pytest's `--junitxml=/dev/stdout`), which, when
//! present, is read alone. A runner that names none leaves the comparison to the exit status.

mod junit;

/// Lines and characters of a failing test's own output that are kept: its error, not the log.
const MAX_LINES: usize = 20;
const MAX_CHARS: usize = 2000;

/// One named test and how it ended (skipped and to-do tests are not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub passed: bool,
    /// For a failure: its decisive output (the error, the assertion, the first frames).
    pub output: String,
}

/// Every test `output` names, in the order first seen; a name seen twice failed if it failed
/// once.
pub fn parse(output: &str) -> Vec<TestCase> {
    // A report the runner wrote for machines says more than its lines for people (pytest
    // prints both; they name tests differently).
    if let Some(cases) = junit::parse(output) {
        return cases;
    }
    let lines: Vec<&str> = output.lines().collect();
    let mut found: Vec<TestCase> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let case = tap(&lines, index, line)
            .or_else(|| spec(&lines, index, line))
            .or_else(|| pytest(&lines, line))
            .or_else(|| cargo(&lines, line))
            .or_else(|| go(&lines, index, line));
        let Some(case) = case else { continue };
        match found.iter_mut().find(|seen| seen.name == case.name) {
            Some(seen) => {
                if !case.passed && seen.passed {
                    *seen = case;
                } else if !case.passed && seen.output.is_empty() {
                    seen.output = case.output;
                }
            }
            None => found.push(case),
        }
    }
    found
}

/// `ok 1 - name`, `not ok 2 - name` (any indentation: subtests), and the YAML block under a
/// failure.
fn tap(lines: &[&str], index: usize, line: &str) -> Option<TestCase> {
    let trimmed = line.trim_start();
    let (passed, rest) = outcome(trimmed, "not ok ", "ok ")?;
    let (number, name) = rest.split_once(' ')?;
    // `ok  \tpkg\t0.01s` (go test's package line) is no TAP line: a TAP line has a number.
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let name = name.strip_prefix("- ").unwrap_or(name);
    let (name, directive) = match name.split_once(" # ") {
        Some((name, directive)) => (name, directive),
        None => (name, ""),
    };
    let directive = directive.trim_start().to_ascii_uppercase();
    if directive.starts_with("SKIP") || directive.starts_with("TODO") {
        return None;
    }
    case(unescape_tap(name.trim()), passed, || {
        let indent = line.len() - trimmed.len();
        let block = lines[index + 1..]
            .iter()
            .take_while(|l| {
                let t = l.trim_start();
                l.trim().is_empty()
                    || (l.len() - t.len() > indent
                        && !t.starts_with("ok ")
                        && !t.starts_with("not ok ")
                        && !t.starts_with("# Subtest"))
            })
            .map(|l| l.trim())
            .filter(|l| !matches!(*l, "---" | "...") && !l.starts_with("duration_ms:"));
        excerpt(block)
    })
}

/// node's `spec` reporter: `✔ name (1.2ms)`, `✖ name (3ms)` and the indented error below.
fn spec(lines: &[&str], index: usize, line: &str) -> Option<TestCase> {
    let trimmed = line.trim_start();
    let (passed, rest) = outcome(trimmed, "✖ ", "✔ ")?;
    if rest.starts_with("failing tests") {
        return None;
    }
    let name = without_duration(rest, "ms)");
    case(name.trim().to_owned(), passed, || {
        let indent = line.len() - trimmed.len();
        excerpt(
            lines[index + 1..]
                .iter()
                .take_while(|l| l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim()),
        )
    })
}

/// pytest `-rA`: `PASSED tests/test_a.py::test_ok`, `FAILED tests/test_a.py::test_bad - why`,
/// `ERROR tests/test_b.py - why`; a failure's output is its section under `FAILURES`.
fn pytest(lines: &[&str], line: &str) -> Option<TestCase> {
    let (passed, rest) = if let Some(rest) = line.strip_prefix("PASSED ") {
        (true, rest)
    } else if let Some(rest) = line
        .strip_prefix("FAILED ")
        .or_else(|| line.strip_prefix("ERROR "))
    {
        (false, rest)
    } else {
        return None;
    };
    let (name, why) = match rest.split_once(" - ") {
        Some((name, why)) => (name.trim(), why.trim()),
        None => (rest.trim(), ""),
    };
    if name.contains(' ') || name.is_empty() {
        return None;
    }
    case(name.to_owned(), passed, || {
        let short = name.rsplit("::").next().unwrap_or(name);
        let section = lines
            .iter()
            .position(|l| l.starts_with('_') && l.trim_matches(|c| c == '_' || c == ' ') == short)
            .map(|start| {
                lines[start + 1..]
                    .iter()
                    // A frame of a deeper call (the code under test) follows a `_ _ _`
                    // line: the error is raised there, so the section goes on.
                    .take_while(|l| {
                        (!l.starts_with('_') || is_frame_separator(l)) && !l.starts_with('=')
                    })
                    .filter(|l| l.starts_with("E ") || l.starts_with('>') || is_location(l))
                    .map(|l| l.trim_end())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        match section.is_empty() {
            true => excerpt(std::iter::once(why)),
            false => excerpt(section.into_iter()),
        }
    })
}

/// `cargo test`: `test tests::adds ... ok`, `test tests::formats ... FAILED` (an ignored test
/// is not listed); a failure's output is its `---- tests::formats stdout ----` block.
fn cargo(lines: &[&str], line: &str) -> Option<TestCase> {
    let rest = line.strip_prefix("test ")?;
    let (name, passed) = match rest.rsplit_once(" ... ")? {
        (name, "ok") => (name, true),
        (name, "FAILED") => (name, false),
        _ => return None,
    };
    case(name.to_owned(), passed, || {
        let header = format!("---- {name} stdout ----");
        let block = lines
            .iter()
            .skip_while(|l| **l != header)
            .skip(1)
            .take_while(|l| !l.starts_with("---- ") && l.trim() != "failures:");
        excerpt(block.copied())
    })
}

/// `go test -v`: `--- PASS: TestX (0.00s)`, `--- FAIL: TestX/sub (0.00s)` (any indentation:
/// subtests), named `package.TestX` by the package's `ok` or `FAIL` line that follows (a name
/// is unique in its package only); a failure's output is what the test logged after its
/// `=== RUN` (or `=== CONT`, `=== NAME`) line.
fn go(lines: &[&str], index: usize, line: &str) -> Option<TestCase> {
    let (passed, rest) = outcome(line.trim_start(), "--- FAIL: ", "--- PASS: ")?;
    let test = without_duration(rest, "s)");
    let package = lines[index + 1..].iter().find_map(|l| {
        let mut fields = l.split('\t');
        match fields.next()?.trim_end() {
            "ok" | "FAIL" => fields.next().map(str::trim),
            _ => None,
        }
    });
    let name = match package {
        Some(package) => format!("{package}.{test}"),
        None => test.to_owned(),
    };
    case(name, passed, || {
        let started = lines[..index].iter().rposition(|l| {
            ["=== RUN   ", "=== CONT  ", "=== NAME  "]
                .iter()
                .any(|marker| l.strip_prefix(marker) == Some(test))
        });
        let logged = started.map(|at| {
            lines[at + 1..index]
                .iter()
                .take_while(|l| !l.starts_with("=== ") && !l.trim_start().starts_with("--- "))
                .map(|l| l.trim())
        });
        logged.map(excerpt).unwrap_or_default()
    })
}

/// Whether `line` starts with `failed` or `passed`, and what follows.
fn outcome<'a>(line: &'a str, failed: &str, passed: &str) -> Option<(bool, &'a str)> {
    match line.strip_prefix(failed) {
        Some(rest) => Some((false, rest)),
        None => line.strip_prefix(passed).map(|rest| (true, rest)),
    }
}

/// A test's name without the duration its runner writes after it (`name (1.2ms)`).
fn without_duration<'a>(text: &'a str, unit: &str) -> &'a str {
    match text.rfind(" (") {
        Some(at) if text.ends_with(unit) => &text[..at],
        _ => text,
    }
}

/// The test `name` that ended so; a failure's decisive output is what `failure_output` reads.
fn case(name: String, passed: bool, failure_output: impl FnOnce() -> String) -> Option<TestCase> {
    let output = match passed {
        true => String::new(),
        false => failure_output(),
    };
    Some(TestCase {
        name,
        passed,
        output,
    })
}

/// `_ _ _ _ _`: pytest's line between the frames of one failure's traceback.
fn is_frame_separator(line: &str) -> bool {
    let line = line.trim();
    line.contains("_ _") && line.chars().all(|c| c == '_' || c == ' ')
}

/// `tests/test_a.py:12: AssertionError`
fn is_location(line: &str) -> bool {
    let Some((file, rest)) = line.split_once(".py:") else {
        return false;
    };
    !file.contains(' ')
        && rest
            .split(':')
            .next()
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// TAP escapes `#` and `\` in names.
fn unescape_tap(name: &str) -> String {
    name.replace("\\#", "#").replace("\\\\", "\\")
}

/// The first lines, within the limits, of a failure's own output.
fn excerpt<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for line in lines.filter(|l| !l.trim().is_empty()).take(MAX_LINES) {
        if out.len() + line.len() > MAX_CHARS {
            out.push_str("[...]");
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case's name and whether it passed, in order.
    fn outcomes(cases: &[TestCase]) -> Vec<(&str, bool)> {
        cases.iter().map(|c| (c.name.as_str(), c.passed)).collect()
    }

    #[test]
    fn node_tap_names_each_test_and_quotes_a_failure() {
        let output = "\n> app@1.0.0 test\n> node --test\n\nTAP version 13\n# Subtest: adds\nok 1 - adds\n  ---\n  duration_ms: 0.4\n  ...\n# Subtest: formats\nnot ok 2 - formats\n  ---\n  duration_ms: 1.1\n  failureType: 'testCodeFailure'\n  error: 'lib.format is not a function'\n  code: 'ERR_TEST_FAILURE'\n  stack: |-\n    TestContext.<anonymous> (/sandbox/clone/test/app.test.js:9:7)\n  ...\n# Subtest: later\nok 3 - later # SKIP\n1..3\n# tests 3\n# pass 1\n# fail 1\n";
        let cases = parse(output);
        assert_eq!(cases.len(), 2, "{cases:?}");
        assert_eq!(cases[0].name, "adds");
        assert!(cases[0].passed);
        assert_eq!(cases[1].name, "formats");
        assert!(!cases[1].passed);
        assert!(
            cases[1]
                .output
                .contains("error: 'lib.format is not a function'"),
            "{}",
            cases[1].output
        );
        assert!(!cases[1].output.contains("duration_ms"));
    }

    #[test]
    fn node_spec_output_is_read_too() {
        let output = "✔ adds (0.5ms)\n✖ formats (1.2ms)\n  TypeError: lib.format is not a function\n      at TestContext.<anonymous> (test.js:9:7)\nℹ tests 2\n✖ failing tests:\n\ntest at test.js:8:1\n✖ formats (1.2ms)\n  TypeError: lib.format is not a function\n";
        let cases = parse(output);
        assert_eq!(outcomes(&cases), [("adds", true), ("formats", false)]);
        assert!(cases[1].output.starts_with("TypeError: lib.format"));
    }

    #[test]
    fn pytest_summary_lines_and_failure_sections() {
        let output = "=================================== FAILURES ===================================\n__________________________________ test_bad ___________________________________\n\n    def test_bad():\n>       assert fmt(1) == '1'\nE       AttributeError: module 'lib' has no attribute 'fmt'\n\ntests/test_a.py:7: AttributeError\n=========================== short test summary info ============================\nPASSED tests/test_a.py::test_ok\nFAILED tests/test_a.py::test_bad - AttributeError: module 'lib' has no attribute 'fmt'\nERROR tests/test_b.py - ImportError: no module\n========================= 1 failed, 1 passed in 0.03s ==========================\n";
        let cases = parse(output);
        assert_eq!(
            outcomes(&cases),
            [
                ("tests/test_a.py::test_ok", true),
                ("tests/test_a.py::test_bad", false),
                ("tests/test_b.py", false)
            ]
        );
        assert_eq!(
            cases[1].output,
            ">       assert fmt(1) == '1'\nE       AttributeError: module 'lib' has no attribute 'fmt'\ntests/test_a.py:7: AttributeError"
        );
        assert_eq!(cases[2].output, "ImportError: no module");
    }

    #[test]
    fn a_pytest_failure_raised_in_the_code_under_test_keeps_its_error() {
        let output = "=================================== FAILURES ===================================\n__________________________________ test_line ___________________________________\n\n    def test_line():\n>       assert line('tea', 7) == 'tea   7'\n\ntests/test_billing.py:5: \n_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _\n\nlabel = 'tea', n = 7\n\n    def line(label, n):\n>       return pyfmt.pad(label, 6) + pyfmt.fmt(n)\nE       AttributeError: module 'pyfmt' has no attribute 'fmt'\n\ninvoice.py:5: AttributeError\n__________________________________ test_other __________________________________\n>       assert 0\nE       assert 0\n=========================== short test summary info ============================\nFAILED tests/test_billing.py::test_line - AttributeError: module 'pyfmt' has no attribute 'fmt'\n";
        let cases = parse(output);
        assert_eq!(
            cases[0].output,
            ">       assert line('tea', 7) == 'tea   7'\ntests/test_billing.py:5:\n>       return pyfmt.pad(label, 6) + pyfmt.fmt(n)\nE       AttributeError: module 'pyfmt' has no attribute 'fmt'\ninvoice.py:5: AttributeError"
        );
    }

    /// `cargo test --no-fail-fast` of a crate whose unit test `formats` fails (an ignored test,
    /// an integration test target and an empty doc-test target beside it), as cargo 1.9x
    /// prints it (stdout; cargo's own progress goes to stderr).
    const CARGO_TEST: &str = "\nrunning 3 tests\ntest tests::adds ... ok\ntest tests::formats ... FAILED\ntest tests::slow ... ignored\n\nfailures:\n\n---- tests::formats stdout ----\n\nthread 'tests::formats' (30052) panicked at src/lib.rs:10:20:\nassertion `left == right` failed\n  left: \"7!\"\n right: \"7\"\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\n\nfailures:\n    tests::formats\n\ntest result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n\nrunning 2 tests\ntest public_add ... ok\ntest public_fmt ... ok\n\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\n\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n";

    /// `go test -v ./...` of a module with two packages, both with a `TestAdd`, a failing
    /// subtest, a skipped test and a failure that logged lines, as go 1.2x prints it.
    const GO_TEST: &str = "=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n=== RUN   TestTable\n=== RUN   TestTable/one\n=== RUN   TestTable/two\n    billing_test.go:13: two broke: got 2\n--- FAIL: TestTable (0.00s)\n    --- PASS: TestTable/one (0.00s)\n    --- FAIL: TestTable/two (0.00s)\nFAIL\nFAIL\texample.com/billing\t0.014s\n=== RUN   TestPad\n    fmtx_test.go:6: padding\n    fmtx_test.go:8: Pad(\"a\") = \"a \", want \"a  \"\n--- FAIL: TestPad (0.00s)\n=== RUN   TestSkip\n    fmtx_test.go:12: later\n--- SKIP: TestSkip (0.00s)\n=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\nFAIL\nFAIL\texample.com/billing/fmtx\t0.013s\nFAIL\n";

    /// Output of a runner captured from the real tool, the tests it names, and one failure's
    /// decisive output (by its index among them).
    struct Captured {
        output: &'static str,
        outcomes: &'static [(&'static str, bool)],
        failure: (usize, &'static str),
    }

    const CAPTURED: &[Captured] = &[
        Captured {
            output: CARGO_TEST,
            outcomes: &[
                ("tests::adds", true),
                ("tests::formats", false),
                ("public_add", true),
                ("public_fmt", true),
            ],
            failure: (
                1,
                "thread 'tests::formats' (30052) panicked at src/lib.rs:10:20:\nassertion `left == right` failed\n  left: \"7!\"\n right: \"7\"\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            ),
        },
        Captured {
            output: GO_TEST,
            outcomes: &[
                ("example.com/billing.TestAdd", true),
                ("example.com/billing.TestTable", false),
                ("example.com/billing.TestTable/one", true),
                ("example.com/billing.TestTable/two", false),
                ("example.com/billing/fmtx.TestPad", false),
                ("example.com/billing/fmtx.TestAdd", true),
            ],
            failure: (
                4,
                "fmtx_test.go:6: padding\nfmtx_test.go:8: Pad(\"a\") = \"a \", want \"a  \"",
            ),
        },
        Captured {
            // A package whose tests pass ends with `ok  \tPACKAGE\tTIME`: no TAP line.
            output: "=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\nPASS\nok  \texample.com/billing\t0.005s\n",
            outcomes: &[("example.com/billing.TestAdd", true)],
            failure: (0, ""),
        },
    ];

    #[test]
    fn cargo_and_go_test_name_each_test_and_quote_a_failure() {
        for captured in CAPTURED {
            let cases = parse(captured.output);
            assert_eq!(outcomes(&cases), captured.outcomes);
            let (index, output) = captured.failure;
            assert_eq!(cases[index].output, output);
        }
        // A failing subtest quotes what it logged under its own `=== RUN` line.
        let go = parse(GO_TEST);
        assert_eq!(go[3].output, "billing_test.go:13: two broke: got 2");
    }
}
