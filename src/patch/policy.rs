//! The patch policy: the checks every patch (from the LLM or the deterministic bump) must pass
//! before it is committed and pushed. Nothing unchecked is pushed.

use std::collections::HashMap;
use std::fmt;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::patch::edit::{ExistingEntry, FileEdit};
use crate::patch::path::check_repo_path;
use crate::patch::size::measure;

/// Configurable limits of the patch policy. Missing fields take the [`Default`] values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// Globs (matched case-insensitively) of paths a patch may never touch. A glob without `/`
    /// matches that file name at any depth; `*` never crosses a `/`, `**` does. Setting this
    /// replaces the default list.
    pub deny_globs: Vec<String>,
    /// Most files one patch may touch.
    pub max_files: usize,
    /// Most bytes one patch may change, summed over files (removed plus added region sizes).
    pub max_bytes_changed: usize,
    /// Largest share (0.0 to 1.0) of an existing file's lines a patch may delete.
    pub max_deleted_share: f64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            deny_globs: [
                ".github/workflows/**",
                ".gitlab-ci.yml",
                ".circleci/**",
                ".travis.yml",
                "Jenkinsfile",
                "azure-pipelines.yml",
                ".buildkite/**",
                "CODEOWNERS",
                ".github/CODEOWNERS",
                "docs/CODEOWNERS",
                ".gitmodules",
                ".gitattributes",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            max_files: 20,
            max_bytes_changed: 64 * 1024,
            max_deleted_share: 0.5,
        }
    }
}

/// Why a [`PolicySettings`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyConfigError {
    /// A deny glob does not parse.
    #[error("patch policy: deny glob `{glob}` is invalid: {source}")]
    InvalidGlob {
        glob: String,
        #[source]
        source: globset::Error,
    },
    /// A limit is outside its meaningful range.
    #[error("patch policy: {0}")]
    InvalidLimit(String),
}

/// The rule a patch broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyRule {
    EmptyPatch,
    AbsolutePath,
    ParentTraversal,
    GitDirectory,
    InvalidPath,
    DeniedPath,
    Symlink,
    Submodule,
    Directory,
    Executable,
    BinaryContent,
    TooManyFiles,
    TooManyBytes,
    TooMuchDeleted,
    NoChange,
    /// A lock file: only the ecosystem's own tool writes those (the lock step).
    LockFile,
    /// A test file or test configuration (`verify.allow_test_edits = false`).
    TestFile,
}

/// Lock files by name: a patch (the bump's or the model's) never writes them; the lock step
/// has the ecosystem's tool do it.
pub const LOCK_FILE_NAMES: &[&str] = &[
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "Cargo.lock",
    "go.sum",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
];

fn check_not_a_lock_file(path: &str) -> Result<(), PolicyViolation> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if LOCK_FILE_NAMES.contains(&name) {
        return Err(PolicyViolation::file(
            PolicyRule::LockFile,
            path,
            "lock files are updated by the ecosystem's own tool after the manifest edit, never \
             by a patch; change the manifest only",
        ));
    }
    Ok(())
}

impl PolicyRule {
    /// Stable snake_case name, for messages, logs and operation output.
    pub fn name(&self) -> &'static str {
        match self {
            Self::EmptyPatch => "empty_patch",
            Self::LockFile => "lock_file",
            Self::TestFile => "test_file",
            Self::AbsolutePath => "absolute_path",
            Self::ParentTraversal => "parent_traversal",
            Self::GitDirectory => "git_directory",
            Self::InvalidPath => "invalid_path",
            Self::DeniedPath => "denied_path",
            Self::Symlink => "symlink",
            Self::Submodule => "submodule",
            Self::Directory => "directory",
            Self::Executable => "executable",
            Self::BinaryContent => "binary_content",
            Self::TooManyFiles => "too_many_files",
            Self::TooManyBytes => "too_many_bytes",
            Self::TooMuchDeleted => "too_much_deleted",
            Self::NoChange => "no_change",
        }
    }
}

impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refused patch: which rule, which file (when one file is to blame) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    pub rule: PolicyRule,
    pub path: Option<String>,
    pub detail: String,
}

impl PolicyViolation {
    fn patch(rule: PolicyRule, detail: impl Into<String>) -> Self {
        Self {
            rule,
            path: None,
            detail: detail.into(),
        }
    }

    fn file(rule: PolicyRule, path: &str, detail: impl Into<String>) -> Self {
        Self {
            rule,
            path: Some(path.to_owned()),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "patch policy violation ({})", self.rule.name())?;
        if let Some(path) = &self.path {
            // Escaped so a hostile path cannot forge log lines.
            write!(f, " in {}", path.escape_debug())?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl std::error::Error for PolicyViolation {}

/// A compiled patch policy, built once from settings and used for every patch.
#[derive(Debug, Clone)]
pub struct PatchPolicy {
    denied: GlobSet,
    deny_globs: Vec<String>,
    max_files: usize,
    max_bytes_changed: usize,
    max_deleted_share: f64,
    /// `verify.allow_test_edits`: whether test files and test configuration may be edited.
    allow_test_edits: bool,
}

impl PatchPolicy {
    /// The policy with test edits allowed or refused (`verify.allow_test_edits`; refused by
    /// default).
    pub fn allowing_test_edits(mut self, allow: bool) -> Self {
        self.allow_test_edits = allow;
        self
    }

    fn check_not_a_test_file(&self, path: &str) -> Result<(), PolicyViolation> {
        if self.allow_test_edits {
            return Ok(());
        }
        match crate::patch::test_files::test_file_reason(path) {
            Some(reason) => Err(PolicyViolation::file(
                PolicyRule::TestFile,
                path,
                format!(
                    "test files and test configuration are never edited ({reason}); change the \
                     code under test so the tests pass as they are"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Compiles the deny globs and validates the limits.
    pub fn new(settings: &PolicySettings) -> Result<Self, PolicyConfigError> {
        if settings.max_files == 0 {
            return Err(PolicyConfigError::InvalidLimit(
                "max_files must be at least 1".to_owned(),
            ));
        }
        if settings.max_bytes_changed == 0 {
            return Err(PolicyConfigError::InvalidLimit(
                "max_bytes_changed must be at least 1".to_owned(),
            ));
        }
        if !(0.0..=1.0).contains(&settings.max_deleted_share) {
            return Err(PolicyConfigError::InvalidLimit(format!(
                "max_deleted_share must be between 0.0 and 1.0, got {}",
                settings.max_deleted_share
            )));
        }

        let mut builder = GlobSetBuilder::new();
        let mut deny_globs = Vec::new();
        for glob in &settings.deny_globs {
            let trimmed = glob.trim().trim_start_matches('/');
            // Like .gitignore: a bare file name is denied wherever it appears.
            let patterns = if trimmed.contains('/') {
                vec![trimmed.to_owned()]
            } else {
                vec![trimmed.to_owned(), format!("**/{trimmed}")]
            };
            for pattern in patterns {
                let compiled = GlobBuilder::new(&pattern)
                    .case_insensitive(true)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| PolicyConfigError::InvalidGlob {
                        glob: glob.clone(),
                        source,
                    })?;
                builder.add(compiled);
                deny_globs.push(glob.clone());
            }
        }
        let denied = builder
            .build()
            .map_err(|source| PolicyConfigError::InvalidGlob {
                glob: settings.deny_globs.join(", "),
                source,
            })?;

        Ok(Self {
            denied,
            deny_globs,
            max_files: settings.max_files,
            max_bytes_changed: settings.max_bytes_changed,
            max_deleted_share: settings.max_deleted_share,
            allow_test_edits: false,
        })
    }

    /// Checks a whole patch; the first broken rule is returned.
    pub fn check(&self, edits: &[FileEdit]) -> Result<(), PolicyViolation> {
        if edits.is_empty() {
            return Err(PolicyViolation::patch(
                PolicyRule::EmptyPatch,
                "the patch changes no file",
            ));
        }
        if edits.len() > self.max_files {
            return Err(PolicyViolation::patch(
                PolicyRule::TooManyFiles,
                format!(
                    "the patch touches {} files; at most {} are allowed",
                    edits.len(),
                    self.max_files
                ),
            ));
        }

        // Case-folded, because two paths differing only in case are one file on macOS/Windows.
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut total_bytes = 0usize;
        for edit in edits {
            let path = edit.path.as_str();
            check_repo_path(path)
                .map_err(|(rule, detail)| PolicyViolation::file(rule, path, detail))?;
            if let Some(first) = seen.insert(path.to_lowercase(), path) {
                return Err(PolicyViolation::file(
                    PolicyRule::InvalidPath,
                    path,
                    format!(
                        "the patch names this file twice (also as `{}`)",
                        first.escape_debug()
                    ),
                ));
            }
            self.check_denied(path)?;
            check_not_a_lock_file(path)?;
            self.check_not_a_test_file(path)?;
            check_existing(edit)?;
            total_bytes = total_bytes.saturating_add(self.check_content(edit)?);
        }

        if total_bytes > self.max_bytes_changed {
            return Err(PolicyViolation::patch(
                PolicyRule::TooManyBytes,
                format!(
                    "the patch changes {total_bytes} bytes; at most {} are allowed",
                    self.max_bytes_changed
                ),
            ));
        }
        Ok(())
    }

    fn check_denied(&self, path: &str) -> Result<(), PolicyViolation> {
        match self.denied.matches(path).first() {
            Some(&index) => Err(PolicyViolation::file(
                PolicyRule::DeniedPath,
                path,
                format!(
                    "the path matches the deny glob `{}`; such files are changed by people only",
                    self.deny_globs.get(index).map_or("?", String::as_str)
                ),
            )),
            None => Ok(()),
        }
    }

    /// Checks one file's content rules and returns its changed-byte count.
    fn check_content(&self, edit: &FileEdit) -> Result<usize, PolicyViolation> {
        let path = edit.path.as_str();
        if edit.updated.contains('\0') {
            return Err(PolicyViolation::file(
                PolicyRule::BinaryContent,
                path,
                "the new content contains a NUL byte; binary files are not patched",
            ));
        }
        if edit
            .original
            .as_deref()
            .is_some_and(|text| text.contains('\0'))
        {
            return Err(PolicyViolation::file(
                PolicyRule::BinaryContent,
                path,
                "the existing file contains a NUL byte; binary files are not patched",
            ));
        }
        if edit.is_unchanged() {
            return Err(PolicyViolation::file(
                PolicyRule::NoChange,
                path,
                "the edit leaves the file exactly as it was",
            ));
        }

        let size = measure(edit.original.as_deref().unwrap_or(""), &edit.updated);
        if size.original_lines > 0 {
            // Lossless: line counts of text that fits in memory are far below 2^52.
            let share = size.lines_deleted as f64 / size.original_lines as f64;
            if share > self.max_deleted_share {
                return Err(PolicyViolation::file(
                    PolicyRule::TooMuchDeleted,
                    path,
                    format!(
                        "the edit deletes {} of the file's {} lines ({:.0}%); at most {:.0}% may be deleted",
                        size.lines_deleted,
                        size.original_lines,
                        share * 100.0,
                        self.max_deleted_share * 100.0
                    ),
                ));
            }
        }
        Ok(size.bytes_changed)
    }
}

/// Only new files and plain regular files may be written.
fn check_existing(edit: &FileEdit) -> Result<(), PolicyViolation> {
    let path = edit.path.as_str();
    let refused = |rule, detail: &str| Err(PolicyViolation::file(rule, path, detail));
    match edit.existing {
        ExistingEntry::Symlink => refused(
            PolicyRule::Symlink,
            "the path is a symbolic link (or lies under one); links are never written through",
        ),
        ExistingEntry::Submodule => refused(
            PolicyRule::Submodule,
            "the path is a git submodule; submodules are not patched",
        ),
        ExistingEntry::Directory => {
            refused(PolicyRule::Directory, "the path is a directory, not a file")
        }
        ExistingEntry::Executable => refused(
            PolicyRule::Executable,
            "the path is an executable file; scripts and binaries are changed by people only",
        ),
        ExistingEntry::Missing if edit.original.is_some() => refused(
            PolicyRule::InvalidPath,
            "the edit carries original content for a file that does not exist",
        ),
        ExistingEntry::Regular if edit.original.is_none() => refused(
            PolicyRule::InvalidPath,
            "the edit carries no original content for an existing file",
        ),
        ExistingEntry::Missing | ExistingEntry::Regular => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARGO_BEFORE: &str = r#"[package]
name = "demo"
version = "0.1.0"
edition = "2021"

[dependencies]
serde = { version = "1.0", features = ["derive"] }
hyper = "0.14.10"
tokio = "1"
"#;

    fn policy() -> PatchPolicy {
        PatchPolicy::new(&PolicySettings::default()).expect("default settings are valid")
    }

    fn violation(edits: &[FileEdit]) -> PolicyViolation {
        policy()
            .check(edits)
            .expect_err("the patch should be refused")
    }

    fn rule(edits: &[FileEdit]) -> PolicyRule {
        violation(edits).rule
    }

    /// The default settings with `glob` as the only deny glob.
    fn settings_denying(glob: &str) -> PolicySettings {
        PolicySettings {
            deny_globs: vec![glob.to_owned()],
            ..PolicySettings::default()
        }
    }

    fn small_edit(path: &str) -> FileEdit {
        FileEdit::modify(path, "a = 1\n", "a = 2\n")
    }

    /// A small edit of `path` is refused by `expected`, and the violation names the path.
    fn assert_refused_at(path: &str, expected: PolicyRule) {
        let refused = violation(&[small_edit(path)]);
        assert_eq!(refused.rule, expected, "{path}");
        assert_eq!(refused.path.as_deref(), Some(path));
    }

    /// `edits` are refused by `expected`, with a detail that contains `needle`.
    fn assert_refused_with(edits: &[FileEdit], expected: PolicyRule, needle: &str) {
        let refused = violation(edits);
        assert_eq!(refused.rule, expected);
        assert!(refused.detail.contains(needle), "{}", refused.detail);
    }

    #[test]
    fn a_realistic_dependency_patch_is_accepted() {
        let edits = vec![
            FileEdit::modify(
                "Cargo.toml",
                CARGO_BEFORE,
                CARGO_BEFORE.replace("hyper = \"0.14.10\"", "hyper = \"0.14.28\""),
            ),
            FileEdit::modify(
                "crates/server/src/http.rs",
                "use hyper::Server;\n\nfn main() {}\n",
                "use hyper::server::Server;\n\nfn main() {}\n",
            ),
            FileEdit::create("docs/security/CVE-2023-26964.md", "Upgraded hyper.\n"),
        ];
        assert_eq!(policy().check(&edits), Ok(()));
    }

    #[test]
    fn test_files_are_refused_unless_test_edits_are_allowed() {
        for path in [
            "test/a.test.js",
            "tests/test_b.py",
            "src/c.spec.ts",
            "jest.config.js",
        ] {
            assert_refused_at(path, PolicyRule::TestFile);
        }
        let allowing = policy().allowing_test_edits(true);
        assert_eq!(allowing.check(&[small_edit("tests/test_b.py")]), Ok(()));
        assert_eq!(policy().check(&[small_edit("src/invoice.js")]), Ok(()));
    }

    #[test]
    fn empty_patch_is_refused() {
        let refused = violation(&[]);
        assert_eq!(refused.rule, PolicyRule::EmptyPatch);
        assert_eq!(refused.path, None);
    }

    #[test]
    fn paths_outside_the_repository_or_malformed_are_refused() {
        let cases = [
            ("/etc/cron.d/job", PolicyRule::AbsolutePath),
            ("D:/repo/file.txt", PolicyRule::AbsolutePath),
            ("src/../../.bashrc", PolicyRule::ParentTraversal),
            (".git/hooks/pre-push", PolicyRule::GitDirectory),
            ("vendor/x/.GIT/config", PolicyRule::GitDirectory),
            ("", PolicyRule::InvalidPath),
            ("src/./lib.rs", PolicyRule::InvalidPath),
            ("src\\lib.rs", PolicyRule::InvalidPath),
            ("src/lib\u{1b}.rs", PolicyRule::InvalidPath),
        ];
        for (path, expected) in cases {
            assert_eq!(rule(&[small_edit(path)]), expected, "{path:?}");
        }
    }

    #[test]
    fn duplicate_paths_are_refused_even_when_only_case_differs() {
        let refused = violation(&[small_edit("src/lib.rs"), small_edit("src/lib.rs")]);
        assert_eq!(refused.rule, PolicyRule::InvalidPath);
        assert_eq!(refused.path.as_deref(), Some("src/lib.rs"));
        assert_eq!(
            rule(&[small_edit("README.md"), small_edit("readme.md")]),
            PolicyRule::InvalidPath
        );
    }

    #[test]
    fn inconsistent_existing_and_original_are_refused() {
        let mut phantom = small_edit("src/lib.rs");
        phantom.existing = ExistingEntry::Missing;
        assert_eq!(rule(&[phantom]), PolicyRule::InvalidPath);
        let mut blind = FileEdit::create("src/lib.rs", "x\n");
        blind.existing = ExistingEntry::Regular;
        assert_eq!(rule(&[blind]), PolicyRule::InvalidPath);
    }

    #[test]
    fn denied_globs_match_case_insensitively_and_at_the_right_depths() {
        for path in [
            ".github/workflows/ci.yml",
            ".GitHub/Workflows/release.YAML",
            ".github/workflows/nested/deep.yml",
            ".gitlab-ci.yml",
            ".circleci/config.yml",
            ".travis.yml",
            "Jenkinsfile",
            "ci/jenkinsfile",
            "azure-pipelines.yml",
            ".buildkite/pipeline.yml",
            "CODEOWNERS",
            ".github/CODEOWNERS",
            "docs/codeowners",
            ".gitmodules",
            ".gitattributes",
            "assets/.gitattributes",
        ] {
            assert_refused_at(path, PolicyRule::DeniedPath);
        }
        for path in [
            ".github/dependabot.yml",
            "docs/workflows/ci.yml",
            "src/travis.rs",
        ] {
            assert_eq!(policy().check(&[small_edit(path)]), Ok(()), "{path}");
        }
    }

    #[test]
    fn denied_detail_names_the_glob() {
        assert_refused_with(
            &[small_edit(".github/workflows/ci.yml")],
            PolicyRule::DeniedPath,
            "`.github/workflows/**`",
        );
    }

    #[test]
    fn existing_entries_other_than_regular_files_are_refused() {
        for (existing, expected) in [
            (ExistingEntry::Symlink, PolicyRule::Symlink),
            (ExistingEntry::Submodule, PolicyRule::Submodule),
            (ExistingEntry::Directory, PolicyRule::Directory),
            (ExistingEntry::Executable, PolicyRule::Executable),
        ] {
            let mut edit = small_edit("scripts/install.sh");
            edit.existing = existing;
            assert_eq!(rule(&[edit]), expected);
        }
    }

    #[test]
    fn binary_content_is_refused_on_either_side() {
        for edit in [
            FileEdit::modify("logo.txt", "text\n", "bin\0ary\n"),
            FileEdit::modify("logo.txt", "bin\0ary\n", "text\n"),
            FileEdit::create("new.bin", "\0"),
        ] {
            assert_eq!(
                rule(std::slice::from_ref(&edit)),
                PolicyRule::BinaryContent,
                "{edit:?}"
            );
        }
    }

    #[test]
    fn too_many_files_is_refused() {
        let edits: Vec<FileEdit> = (0..21)
            .map(|i| small_edit(&format!("src/f{i}.rs")))
            .collect();
        assert_refused_with(&edits, PolicyRule::TooManyFiles, "21 files");
        assert_eq!(policy().check(&edits[..20]), Ok(()));
    }

    #[test]
    fn too_many_bytes_is_refused_summed_over_files() {
        let settings = PolicySettings {
            max_bytes_changed: 100,
            ..PolicySettings::default()
        };
        let policy = PatchPolicy::new(&settings).expect("valid settings");
        let forty = "x".repeat(39) + "\n";
        let one = FileEdit::create("a.txt", forty.clone());
        let two = FileEdit::create("b.txt", forty.clone());
        let three = FileEdit::create("c.txt", forty);
        assert_eq!(policy.check(&[one.clone(), two.clone()]), Ok(()));
        let refused = policy
            .check(&[one, two, three])
            .expect_err("120 > 100 bytes");
        assert_eq!(refused.rule, PolicyRule::TooManyBytes);
        assert_eq!(refused.path, None);
    }

    #[test]
    fn default_byte_cap_is_64_kib() {
        let big = "y".repeat(64 * 1024) + "\n";
        assert_eq!(
            rule(&[FileEdit::create("generated.txt", big)]),
            PolicyRule::TooManyBytes
        );
    }

    #[test]
    fn deleting_more_than_the_share_is_refused() {
        let original = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let half = "1\n2\n3\n4\n5\n";
        let stub = "1\n// ... rest unchanged\n";
        assert_eq!(
            policy().check(&[FileEdit::modify("src/a.rs", original, half)]),
            Ok(())
        );
        assert_refused_with(
            &[FileEdit::modify("src/a.rs", original, stub)],
            PolicyRule::TooMuchDeleted,
            "8 of the file's 10 lines",
        );
    }

    #[test]
    fn blanking_most_of_a_file_is_refused_as_a_deletion() {
        // The line count stays, so only counting non-blank lines sees the deletion.
        let original = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let blanked = "1\n\n\n\n\n\n\n\n\n\n";
        assert_refused_with(
            &[FileEdit::modify("src/a.rs", original, blanked)],
            PolicyRule::TooMuchDeleted,
            "9 of the file's 10 lines",
        );
        // Emptying a file entirely is the plainest deletion.
        assert_eq!(
            rule(&[FileEdit::modify("Cargo.toml", CARGO_BEFORE, "")]),
            PolicyRule::TooMuchDeleted
        );
    }

    #[test]
    fn unchanged_file_is_refused() {
        assert_eq!(
            rule(&[FileEdit::modify("Cargo.toml", CARGO_BEFORE, CARGO_BEFORE)]),
            PolicyRule::NoChange
        );
    }

    #[test]
    fn violation_display_names_rule_path_and_detail() {
        let refused = violation(&[small_edit("../x")]);
        assert_eq!(
            refused.to_string(),
            "patch policy violation (parent_traversal) in ../x: `..` components are refused: the path must stay inside the repository"
        );
        assert_eq!(
            violation(&[]).to_string(),
            "patch policy violation (empty_patch): the patch changes no file"
        );
    }

    #[test]
    fn rule_names_are_snake_case() {
        assert_eq!(PolicyRule::ParentTraversal.name(), "parent_traversal");
        assert_eq!(PolicyRule::TooMuchDeleted.name(), "too_much_deleted");
        assert_eq!(PolicyRule::BinaryContent.to_string(), "binary_content");
    }

    #[test]
    fn settings_deserialize_with_defaults_for_missing_fields() {
        let settings: PolicySettings =
            serde_json::from_str(r#"{"max_files": 5}"#).expect("valid settings");
        assert_eq!(settings.max_files, 5);
        assert_eq!(settings.max_bytes_changed, 65536);
        assert_eq!(settings.max_deleted_share, 0.5);
        assert_eq!(settings.deny_globs, PolicySettings::default().deny_globs);
        assert!(serde_json::from_str::<PolicySettings>(r#"{"max_file": 5}"#).is_err());
    }

    #[test]
    fn custom_deny_globs_replace_the_defaults() {
        let policy = PatchPolicy::new(&settings_denying("secrets/*.env")).expect("valid settings");
        assert_eq!(
            policy
                .check(&[small_edit("Secrets/prod.ENV")])
                .map_err(|v| v.rule),
            Err(PolicyRule::DeniedPath)
        );
        // `*` does not cross directories.
        assert_eq!(
            policy.check(&[small_edit("secrets/nested/prod.env")]),
            Ok(())
        );
        assert_eq!(
            policy.check(&[small_edit(".github/workflows/ci.yml")]),
            Ok(())
        );
    }

    #[test]
    fn bad_settings_are_reported() {
        let error =
            PatchPolicy::new(&settings_denying("src/[unclosed")).expect_err("unclosed class");
        assert!(error.to_string().contains("`src/[unclosed`"), "{error}");

        for settings in [
            PolicySettings {
                max_files: 0,
                ..PolicySettings::default()
            },
            PolicySettings {
                max_bytes_changed: 0,
                ..PolicySettings::default()
            },
            PolicySettings {
                max_deleted_share: 1.5,
                ..PolicySettings::default()
            },
            PolicySettings {
                max_deleted_share: f64::NAN,
                ..PolicySettings::default()
            },
        ] {
            assert!(matches!(
                PatchPolicy::new(&settings),
                Err(PolicyConfigError::InvalidLimit(_))
            ));
        }
    }
}
