//! Test files and test configuration, which a patch may not touch unless
//! `verify.allow_test_edits` says so: a repair that makes the tests pass by changing the tests
//! proves nothing. Matched by path, case-insensitively, wherever the file lies.

/// Directories whose files are tests.
const TEST_DIRS: &[&str] = &["test", "tests", "__tests__", "spec"];

/// Test runners' configuration files by exact name.
const CONFIG_NAMES: &[&str] = &["conftest.py", "pytest.ini"];

/// Test runners' configuration files by the part of the name before its extension.
const CONFIG_STEMS: &[&str] = &["jest.config", "vitest.config"];

/// Why `path` (repository-relative, `/`-separated) is a test file or test configuration, or
/// `None` when it is neither.
pub fn test_file_reason(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    let mut parts: Vec<&str> = lower.split('/').collect();
    let name = parts.pop().unwrap_or("");
    if parts.iter().any(|dir| TEST_DIRS.contains(dir)) {
        return Some("it lies in a test directory (test/, tests/, __tests__/, spec/)");
    }
    if CONFIG_NAMES.contains(&name) || CONFIG_STEMS.iter().any(|s| is_stem_of(s, name)) {
        return Some("it is test configuration (pytest.ini, conftest.py, jest or vitest config)");
    }
    if is_test_name(name) {
        return Some("it is a test file (*.test.*, *.spec.*, test_*.py, *_test.py, *_test.go)");
    }
    None
}

/// `jest.config.js`, `vitest.config.mts`: the stem, a dot, an extension.
fn is_stem_of(stem: &str, name: &str) -> bool {
    name.strip_prefix(stem)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|ext| !ext.is_empty())
}

fn is_test_name(name: &str) -> bool {
    // `a.test.js`: a piece named test or spec between the first and the extension.
    let pieces: Vec<&str> = name.split('.').collect();
    let middle = pieces.len() >= 3
        && pieces[1..pieces.len() - 1]
            .iter()
            .any(|p| *p == "test" || *p == "spec");
    middle
        || (name.starts_with("test_") && name.ends_with(".py"))
        || name.ends_with("_test.py")
        || name.ends_with("_test.go")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_and_their_configuration_are_recognised() {
        for path in [
            "test/invoice.test.js",
            "tests/test_billing.py",
            "src/__tests__/a.js",
            "spec/helper.rb",
            "src/format.test.ts",
            "src/Format.Spec.js",
            "pkg/test_util.py",
            "pkg/util_test.py",
            "cmd/main_test.go",
            "conftest.py",
            "sub/pytest.ini",
            "jest.config.js",
            "vitest.config.mts",
        ] {
            assert!(test_file_reason(path).is_some(), "{path}");
        }
    }

    #[test]
    fn source_files_are_not_tests() {
        for path in [
            "src/invoice.js",
            "src/testing.js",
            "lib/contest.py",
            "latest/a.js",
            "src/test.js",
            "jest.config",
            "attest_x.py",
            "README.md",
        ] {
            assert_eq!(test_file_reason(path), None, "{path}");
        }
    }
}
