//! How big a file edit is, as the patch policy's caps measure it: the changed region is what is
//! left after trimming the lines the original and the updated text share at the start and end.

/// The size of one file's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeSize {
    /// Bytes of the changed region, counted on both sides (removed plus added).
    pub bytes_changed: usize,
    /// Lines in the original file.
    pub original_lines: usize,
    /// Net lines removed: changed-region lines of the original minus those of the update,
    /// floored at zero, or, when larger, the same difference counting only non-blank lines
    /// (so blanking a file's lines while keeping their count is a deletion too). Any other
    /// rewrite that keeps the line count deletes nothing by this measure; its size is capped
    /// by `bytes_changed` instead.
    pub lines_deleted: usize,
}

/// Measures the change from `original` (empty for a new file) to `updated`.
pub fn measure(original: &str, updated: &str) -> ChangeSize {
    let old: Vec<&str> = original.split_inclusive('\n').collect();
    let new: Vec<&str> = updated.split_inclusive('\n').collect();

    let prefix = old
        .iter()
        .zip(new.iter())
        .take_while(|(a, b)| a == b)
        .count();
    // The suffix may not reuse lines already counted in the prefix on either side.
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();

    let old_changed = &old[prefix..old.len() - suffix];
    let new_changed = &new[prefix..new.len() - suffix];
    let bytes = |lines: &[&str]| lines.iter().map(|line| line.len()).sum::<usize>();
    let non_blank = |lines: &[&str]| lines.iter().filter(|l| !l.trim().is_empty()).count();
    let lines_deleted = old_changed
        .len()
        .saturating_sub(new_changed.len())
        .max(non_blank(old_changed).saturating_sub(non_blank(new_changed)));

    ChangeSize {
        bytes_changed: bytes(old_changed) + bytes(new_changed),
        original_lines: old.len(),
        lines_deleted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_changes_nothing() {
        let size = measure("a\nb\nc\n", "a\nb\nc\n");
        assert_eq!(
            size,
            ChangeSize {
                bytes_changed: 0,
                original_lines: 3,
                lines_deleted: 0
            }
        );
    }

    #[test]
    fn one_changed_line_counts_both_versions_of_it() {
        let size = measure("a\nversion = 1\nc\n", "a\nversion = 22\nc\n");
        assert_eq!(
            size.bytes_changed,
            "version = 1\n".len() + "version = 22\n".len()
        );
        assert_eq!(size.lines_deleted, 0);
    }

    #[test]
    fn new_file_counts_all_its_bytes() {
        let size = measure("", "hello\nworld\n");
        assert_eq!(size.bytes_changed, 12);
        assert_eq!(size.original_lines, 0);
        assert_eq!(size.lines_deleted, 0);
    }

    #[test]
    fn removed_lines_are_net_deletions() {
        let size = measure("a\nb\nc\nd\n", "a\nd\n");
        assert_eq!(size.bytes_changed, 4);
        assert_eq!(size.original_lines, 4);
        assert_eq!(size.lines_deleted, 2);
    }

    #[test]
    fn repeated_lines_are_not_counted_twice_as_common() {
        // "a\n" matches as prefix; the suffix must not match the same line again.
        let size = measure("a\n", "a\na\n");
        assert_eq!(size.bytes_changed, 2);
        assert_eq!(size.lines_deleted, 0);
    }

    #[test]
    fn blanking_lines_counts_as_deleting_them() {
        // Same line count, but four lines of content are gone.
        let size = measure("a\nb\nc\nd\n", "\n\n  \n\t\n");
        assert_eq!(size.lines_deleted, 4);
        // Rewriting lines with other content is a change, not a deletion.
        let size = measure("a\nb\nc\nd\n", "w\nx\ny\nz\n");
        assert_eq!(size.lines_deleted, 0);
        // Adding blank lines never counts as deleting anything.
        let size = measure("a\nb\n", "a\n\nb\n");
        assert_eq!(size.lines_deleted, 0);
    }

    #[test]
    fn missing_trailing_newline_is_a_change_of_the_last_line() {
        let size = measure("a\nb\n", "a\nb");
        assert_eq!(size.bytes_changed, 3);
        assert_eq!(size.lines_deleted, 0);
    }
}
