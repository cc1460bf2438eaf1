//! What the lock step adds to a pull request's text: the strategy it settled on when that is
//! not the patch's own (a parent upgrade, an override), which then is the one explanation of
//! how the change fixes the vulnerability; the verification of the lock files; and why the
//! pull request is a draft. Package names, versions, paths and tool messages in them come from
//! the repository's lock files and the tools' output, so they are escaped like every other
//! outside text; only the labels are Remediator's own markdown.

use super::escape;
use crate::lockfile::Verification;

/// What a line the worker labels itself says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Which strategy the lock step settled on, and why.
    Strategy,
    /// The parents an upgrade path moved, bottom up.
    Chain,
    /// The other packages a lock-only update moved.
    Moved,
}

impl Label {
    fn as_str(self) -> &'static str {
        match self {
            Label::Strategy => "Strategy",
            Label::Chain => "Chain",
            Label::Moved => "Moved",
        }
    }
}

/// A line the worker labels itself: `**Chain:** express 4.19.2 -> 4.20.0 pulls ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledLine {
    pub label: Label,
    pub text: String,
}

impl LabelledLine {
    pub fn new(label: Label, text: impl Into<String>) -> Self {
        Self {
            label,
            text: text.into(),
        }
    }

    /// The line as markdown, its text escaped.
    pub fn markdown(&self) -> String {
        format!("**{}:** {}", self.label.as_str(), escape(&self.text))
    }

    /// The lines as plain text, one per line (`Chain: ...`), for the operation's output.
    pub fn plain(lines: &[LabelledLine]) -> Option<String> {
        let text: Vec<String> = lines
            .iter()
            .map(|l| format!("{}: {}", l.label.as_str(), l.text))
            .collect();
        (!text.is_empty()).then(|| text.join("\n"))
    }
}

/// The lock step's part of one package's pull request text.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockFacts<'a> {
    pub verification: Option<&'a Verification>,
    /// The strategy the lock step settled on, when it replaced the patch's (empty: the
    /// patch's explanation stands).
    pub strategy: &'a [LabelledLine],
    pub draft_reason: Option<&'a str>,
}

impl LockFacts<'_> {
    /// The paragraphs after the package's sections: the verification, then the draft reason.
    pub fn paragraphs(&self, package: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(verification) = self.verification {
            out.push(verification_line(verification, package));
        }
        if let Some(reason) = self.draft_reason {
            out.push(format!("**Draft:** {}.", escape(reason)));
        }
        out
    }
}

/// "Verified: package-lock.json updated by `npm install --package-lock-only` resolves lodash
/// to 4.17.21; vulnerable copies left: 0." The tool is named by the worker, not the repository.
fn verification_line(v: &Verification, package: &str) -> String {
    let versions: Vec<&str> = v.resolved.iter().map(|r| r.version.as_str()).collect();
    let mut line = match (&v.tool, v.lock_files.is_empty()) {
        (Some(tool), false) => format!(
            "Verified: {} updated by `{tool}` resolves {} to {}; vulnerable copies left: {}.",
            escape(&v.lock_files.join(", ")),
            escape(package),
            match versions.is_empty() {
                true => "no version".to_owned(),
                false => escape(&versions.join(", ")),
            },
            v.vulnerable_left
        ),
        _ => "No lock file covers the change; the manifest declares the fix.".to_owned(),
    };
    for note in &v.not_updated {
        line.push_str(&format!(" Not updated: {}.", escape(note)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::Resolved;

    #[test]
    fn lock_file_facts_are_escaped_and_the_labels_are_not() {
        let verification = Verification {
            lock_files: vec!["package-lock.json".to_owned()],
            tool: Some("npm update --package-lock-only".to_owned()),
            resolved: vec![Resolved {
                path: "node_modules/x".to_owned(),
                version: "1.0.1 <img src=x>".to_owned(),
                vulnerable: false,
            }],
            vulnerable_left: 0,
            not_updated: vec!["see https://evil.example/@team".to_owned()],
        };
        let strategy = [LabelledLine::new(
            Label::Chain,
            "[click](x) @owner -> 2.0.0",
        )];
        let facts = LockFacts {
            verification: Some(&verification),
            strategy: &strategy,
            draft_reason: Some("held by *pkg*"),
        };
        let text = facts.paragraphs("lodash").join("\n");
        assert!(
            text.starts_with(
                "Verified: package-lock.json updated by `npm update --package-lock-only` \
                 resolves lodash to 1.0.1 \\<img src=x>; vulnerable copies left: 0."
            ),
            "{text}"
        );
        assert!(
            !text.contains("https://") && !text.contains(" @team"),
            "{text}"
        );
        assert!(text.ends_with("**Draft:** held by \\*pkg\\*."), "{text}");
        assert_eq!(
            strategy[0].markdown(),
            "**Chain:** \\[click\\](x) \\@\u{200B}owner -> 2.0.0"
        );
        assert_eq!(
            LabelledLine::plain(&strategy).as_deref(),
            Some("Chain: [click](x) @owner -> 2.0.0")
        );
        assert_eq!(LabelledLine::plain(&[]), None);
    }
}
