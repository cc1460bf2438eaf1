//! The patch type shared by every producer of patches (the LLM path and the deterministic bump)
//! and by the policy that checks them: one entry per file, as the patch would leave it.

/// What already exists at a path in the checked-out repository, in `HEAD` and in the work tree
/// (`crate::git::inspect_entry` answers it, never following links).
///
/// A path whose *parent* directory is a symlink is reported as [`Symlink`], because writing
/// through it would land outside the repository, and a submodule anywhere on the path as
/// [`Submodule`].
///
/// [`Symlink`]: ExistingEntry::Symlink
/// [`Submodule`]: ExistingEntry::Submodule
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExistingEntry {
    /// Nothing is there: the patch creates a new file.
    Missing,
    /// A regular, non-executable file.
    Regular,
    /// A regular file with an executable bit set.
    Executable,
    /// A symbolic link (or a path reached through one).
    Symlink,
    /// A git submodule (gitlink) entry.
    Submodule,
    /// A directory.
    Directory,
}

impl ExistingEntry {
    /// Classifies a git tree or index file mode (`0o100644`, `0o100755`, `0o120000`,
    /// `0o160000`, `0o040000`). Unknown modes count as [`ExistingEntry::Executable`] so that
    /// the policy refuses them rather than treating them as plain files.
    pub fn from_git_mode(mode: u32) -> Self {
        match mode & 0o170000 {
            0o120000 => Self::Symlink,
            0o160000 => Self::Submodule,
            0o040000 => Self::Directory,
            0o100000 if mode & 0o111 == 0 => Self::Regular,
            _ => Self::Executable,
        }
    }
}

/// One file as a proposed patch would leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// Repository-relative path with `/` separators, e.g. `crates/core/Cargo.toml`.
    pub path: String,
    /// What is at `path` before the patch.
    pub existing: ExistingEntry,
    /// The current content; `None` exactly when `existing` is [`ExistingEntry::Missing`].
    pub original: Option<String>,
    /// The full content after the patch.
    pub updated: String,
}

impl FileEdit {
    /// An edit of an existing regular file.
    pub fn modify(
        path: impl Into<String>,
        original: impl Into<String>,
        updated: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            existing: ExistingEntry::Regular,
            original: Some(original.into()),
            updated: updated.into(),
        }
    }

    /// The creation of a new file.
    pub fn create(path: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            existing: ExistingEntry::Missing,
            original: None,
            updated: content.into(),
        }
    }

    /// Whether the edit leaves the file exactly as it was.
    pub fn is_unchanged(&self) -> bool {
        self.original.as_deref() == Some(self.updated.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modify_describes_an_existing_regular_file() {
        let edit = FileEdit::modify("Cargo.toml", "a\n", "b\n");
        assert_eq!(edit.existing, ExistingEntry::Regular);
        assert_eq!(edit.original.as_deref(), Some("a\n"));
        assert_eq!(edit.updated, "b\n");
        assert!(!edit.is_unchanged());
    }

    #[test]
    fn create_has_no_original_and_is_never_unchanged() {
        let edit = FileEdit::create("NOTES.md", "");
        assert_eq!(edit.existing, ExistingEntry::Missing);
        assert_eq!(edit.original, None);
        assert!(!edit.is_unchanged());
    }

    #[test]
    fn git_modes_map_to_entries() {
        let cases = [
            (0o100644, ExistingEntry::Regular),
            (0o100664, ExistingEntry::Regular),
            (0o100755, ExistingEntry::Executable),
            (0o120000, ExistingEntry::Symlink),
            (0o160000, ExistingEntry::Submodule),
            (0o040000, ExistingEntry::Directory),
            // An unknown mode is refused by the policy, not taken for a plain file.
            (0o010644, ExistingEntry::Executable),
        ];
        for (mode, entry) in cases {
            assert_eq!(ExistingEntry::from_git_mode(mode), entry, "{mode:o}");
        }
    }

    #[test]
    fn identical_content_is_unchanged() {
        assert!(FileEdit::modify("a.txt", "same\n", "same\n").is_unchanged());
    }
}
