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

/// How many lines `old` and `new` share at their start, and then at their end: what is left
/// between is the changed region. The end may not reuse lines already counted at the start
/// on either side.
pub fn shared_ends(old: &[&str], new: &[&str]) -> (usize, usize) {
    let prefix = old
        .iter()
        .zip(new.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (prefix, suffix)
}

/// Measures the change from `original` (empty for a new file) to `updated`.
pub fn measure(original: &str, updated: &str) -> ChangeSize {
    let old: Vec<&str> = original.split_inclusive('\n').collect();
    let new: Vec<&str> = updated.split_inclusive('\n').collect();

    let (prefix, suffix) = shared_ends(&old, &new);
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

    /// Each case: the original text, the updated text and the size expected, as
    /// `(bytes_changed, original_lines, lines_deleted)`.
    const CASES: &[(&str, &str, (usize, usize, usize))] = &[
        // Identical text changes nothing.
        ("a\nb\nc\n", "a\nb\nc\n", (0, 3, 0)),
        // One changed line counts both versions of it: "version = 1\n" and "version = 22\n".
        (
            "a\nversion = 1\nc\n",
            "a\nversion = 22\nc\n",
            (12 + 13, 3, 0),
        ),
        // A new file counts all its bytes.
        ("", "hello\nworld\n", (12, 0, 0)),
        // Removed lines are net deletions.
        ("a\nb\nc\nd\n", "a\nd\n", (4, 4, 2)),
        // Repeated lines are not counted twice as common: "a\n" matches as prefix; the suffix
        // must not match the same line again.
        ("a\n", "a\na\n", (2, 1, 0)),
        // Blanking lines counts as deleting them: same line count, but four lines of content
        // are gone.
        ("a\nb\nc\nd\n", "\n\n  \n\t\n", (15, 4, 4)),
        // Rewriting lines with other content is a change, not a deletion.
        ("a\nb\nc\nd\n", "w\nx\ny\nz\n", (16, 4, 0)),
        // Adding blank lines never counts as deleting anything.
        ("a\nb\n", "a\n\nb\n", (1, 2, 0)),
        // A missing trailing newline is a change of the last line.
        ("a\nb\n", "a\nb", (3, 2, 0)),
    ];

    #[test]
    fn every_case_measures_as_expected() {
        for (original, updated, (bytes_changed, original_lines, lines_deleted)) in CASES {
            assert_eq!(
                measure(original, updated),
                ChangeSize {
                    bytes_changed: *bytes_changed,
                    original_lines: *original_lines,
                    lines_deleted: *lines_deleted,
                },
                "{original:?} to {updated:?}"
            );
        }
    }
}
