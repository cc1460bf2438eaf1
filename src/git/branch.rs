//! Which branch names the service accepts for a project's default branch. The name comes from
//! an imported catalog, so it is untrusted: it is checked once here, by the import, the intake
//! (before a job is queued) and the clone, so a name one of them accepts is never refused by
//! another later.

use git2::Reference;

/// Longer than any real branch name; git itself has no limit, but a ref this long is abuse.
pub const MAX_BRANCH_LEN: usize = 255;

/// Refuses a branch name git would not accept as `refs/heads/NAME`, and anything beyond that
/// could be read as an option (a leading `-`) or break a log line or a header (control
/// characters, whitespace). The message never repeats the name.
pub fn check_branch_name(branch: &str) -> Result<(), String> {
    if branch.is_empty() {
        return Err("the branch name is empty".to_owned());
    }
    if branch.len() > MAX_BRANCH_LEN {
        return Err(format!(
            "the branch name is longer than {MAX_BRANCH_LEN} bytes"
        ));
    }
    if branch.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the branch name contains whitespace or control characters".to_owned());
    }
    if branch.starts_with('-') {
        return Err("the branch name must not start with '-'".to_owned());
    }
    if !Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err("the branch name is not a valid git branch name".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_hostile_ones_are_refused() {
        for good in ["main", "master", "release/2.x", "dev-1.0", "feature_x"] {
            assert_eq!(check_branch_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            " main",
            "main ",
            "ma\0in",
            "main\r\nx",
            "--upload-pack=touch /tmp/pwned",
            "-b",
            "a..b",
            "a.lock",
            "refs/../x",
            "x~1",
            "x^",
            "x:y",
            "a//b",
            "@{-1}",
            &"b".repeat(MAX_BRANCH_LEN + 1),
        ] {
            assert!(check_branch_name(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
