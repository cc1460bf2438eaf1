//! Repository path rules of the patch policy: a patch may only name plain, repository-relative
//! paths, never anything that escapes the work tree or reaches git's own metadata.

use crate::patch::policy::PolicyRule;

/// Checks that `path` is a plain repository-relative path: `/`-separated, no leading `/`, no
/// Windows drive or backslash, no empty, `.` or `..` component, no NUL or control character,
/// and nothing named `.git` (in any case, or spelled as Windows would alias it) at any depth.
///
/// On failure returns the rule broken and a human-readable reason.
pub fn check_repo_path(path: &str) -> Result<(), (PolicyRule, String)> {
    if path.is_empty() {
        return Err((PolicyRule::InvalidPath, "the path is empty".to_owned()));
    }
    if path.chars().any(char::is_control) {
        return Err((
            PolicyRule::InvalidPath,
            "the path contains a NUL or control character".to_owned(),
        ));
    }
    if path.starts_with('/') {
        return Err((
            PolicyRule::AbsolutePath,
            "absolute paths are refused; use a path relative to the repository root".to_owned(),
        ));
    }
    if path.starts_with('\\') || has_drive_prefix(path) {
        return Err((
            PolicyRule::AbsolutePath,
            "Windows absolute paths are refused; use a `/`-separated path relative to the repository root"
                .to_owned(),
        ));
    }
    if path.contains('\\') {
        return Err((
            PolicyRule::InvalidPath,
            "backslashes are refused; separate directories with `/`".to_owned(),
        ));
    }
    for component in path.split('/') {
        match component {
            "" => {
                return Err((
                    PolicyRule::InvalidPath,
                    "the path has an empty component (a doubled or trailing `/`)".to_owned(),
                ));
            }
            "." => {
                return Err((
                    PolicyRule::InvalidPath,
                    "the path has a `.` component; give it in normal form".to_owned(),
                ));
            }
            ".." => {
                return Err((
                    PolicyRule::ParentTraversal,
                    "`..` components are refused: the path must stay inside the repository"
                        .to_owned(),
                ));
            }
            _ => {}
        }
        if is_git_dir_alias(component) {
            return Err((
                PolicyRule::GitDirectory,
                "git metadata (`.git`) cannot be changed by a patch".to_owned(),
            ));
        }
    }
    Ok(())
}

/// `C:` and the like, which Windows resolves relative to a drive rather than the repository.
fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Whether a path component would name the `.git` directory on some filesystem: case-folding
/// filesystems accept `.GIT`, Windows drops trailing dots and spaces and knows the 8.3 alias
/// `GIT~1`, and HFS+ ignores zero-width characters (`.g\u{200c}it`). Git itself refuses these
/// names for the same reason.
fn is_git_dir_alias(component: &str) -> bool {
    let lowered: String = component
        .chars()
        .filter(|c| !is_hfs_ignorable(*c))
        .collect::<String>()
        .to_ascii_lowercase();
    let trimmed = lowered.trim_end_matches(['.', ' ']);
    trimmed == ".git" || trimmed == "git~1" || lowered.starts_with(".git:")
}

/// The code points HFS+ drops when comparing names (the list git's `is_hfs_dotgit` uses).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(path: &str) -> Option<PolicyRule> {
        check_repo_path(path).err().map(|(rule, _)| rule)
    }

    /// Each path with the rule that refuses it, or `None` where it passes.
    const CASES: &[(&str, Option<PolicyRule>)] = &[
        // Plain relative paths pass.
        ("Cargo.toml", None),
        ("crates/core/src/lib.rs", None),
        (".github/dependabot.yml", None),
        ("docs/.gitkeep", None),
        ("a/.gitignore", None),
        ("src/git/mod.rs", None),
        ("weird name with spaces.txt", None),
        ("ünïcödé/file.rs", None),
        // Empty paths and control characters are invalid.
        ("", Some(PolicyRule::InvalidPath)),
        ("src/a\0b.rs", Some(PolicyRule::InvalidPath)),
        ("src/a\nb.rs", Some(PolicyRule::InvalidPath)),
        ("src/\u{7f}.rs", Some(PolicyRule::InvalidPath)),
        // Absolute paths are refused.
        ("/etc/passwd", Some(PolicyRule::AbsolutePath)),
        ("C:/Windows/win.ini", Some(PolicyRule::AbsolutePath)),
        ("c:evil.txt", Some(PolicyRule::AbsolutePath)),
        ("\\\\server\\share", Some(PolicyRule::AbsolutePath)),
        // Backslashes and non-normal components are invalid.
        ("src\\main.rs", Some(PolicyRule::InvalidPath)),
        ("src//main.rs", Some(PolicyRule::InvalidPath)),
        ("src/", Some(PolicyRule::InvalidPath)),
        ("./src/main.rs", Some(PolicyRule::InvalidPath)),
        ("src/./main.rs", Some(PolicyRule::InvalidPath)),
        // Parent traversal is refused anywhere.
        ("../outside", Some(PolicyRule::ParentTraversal)),
        ("src/../../outside", Some(PolicyRule::ParentTraversal)),
        ("src/..", Some(PolicyRule::ParentTraversal)),
        // Git metadata is refused at any depth and in any spelling.
        (".git", Some(PolicyRule::GitDirectory)),
        (".git/config", Some(PolicyRule::GitDirectory)),
        (".GIT/hooks/pre-commit", Some(PolicyRule::GitDirectory)),
        ("vendor/lib/.git/config", Some(PolicyRule::GitDirectory)),
        ("sub/.Git/HEAD", Some(PolicyRule::GitDirectory)),
        (".git./config", Some(PolicyRule::GitDirectory)),
        (".git /config", Some(PolicyRule::GitDirectory)),
        ("GIT~1/config", Some(PolicyRule::GitDirectory)),
        (
            ".git::$INDEX_ALLOCATION/config",
            Some(PolicyRule::GitDirectory),
        ),
        (".g\u{200c}it/config", Some(PolicyRule::GitDirectory)),
        (
            "\u{feff}.git/hooks/post-checkout",
            Some(PolicyRule::GitDirectory),
        ),
    ];

    #[test]
    fn every_path_gets_its_rule() {
        for (path, expected) in CASES {
            assert_eq!(rule_of(path), *expected, "{path:?}");
        }
    }
}
