//! The text of a remediation pull request: title, markdown body and branch name.
//!
//! Summaries, explanations, package names and versions come from advisories, manifests and
//! LLM output, so everything from outside is escaped before it enters markdown: it can
//! describe the vulnerability but cannot add links, HTML, headings or @-mentions.

// Writing to a String cannot fail: the results of `write!` in this module are ignored on purpose.
use std::fmt::Write as _;

use crate::db::models::RemediationTarget;
use crate::lifecycle::OperationId;
use crate::lifecycle::fix_plan::{Advisory, Remaining};

mod lock_notes;
mod test_notes;
pub use lock_notes::{Label, LabelledLine, LockFacts};

/// Everything the pull request says about a remediation.
#[derive(Clone, Debug)]
pub struct PrFacts<'a> {
    /// The advisory that triggered the remediation.
    pub advisory: AdvisoryFacts<'a>,
    pub package: &'a str,
    pub ecosystem: &'a str,
    pub from_version: &'a str,
    /// `None` when the fix is not a plain version change.
    pub to_version: Option<&'a str>,
    pub changed_files: &'a [String],
    /// Why the change fixes the vulnerability (from the LLM, or the bump rule).
    pub explanation: Option<&'a str>,
    pub operation_id: OperationId,
    /// Model name when an LLM wrote the patch; `None` for a deterministic bump.
    pub written_by_llm: Option<&'a str>,
    pub confidence: Option<f64>,
    /// The package's other advisories the same change fixes (one pull request per fix).
    pub also_fixes: &'a [AdvisoryFacts<'a>],
    /// The package's advisories this change does not fix, and why.
    pub not_fixed: &'a [NotFixed<'a>],
    /// What the lock step verified and decided.
    pub lock: LockFacts<'a>,
    /// The project's own tests on the default branch and the branch (`None`: not run).
    pub tests: Option<&'a crate::verify::report::TestsReport>,
}

/// An advisory as the pull request describes it: the one that triggered the remediation, or
/// another on the package that the same version fixes.
#[derive(Clone, Copy, Debug)]
pub struct AdvisoryFacts<'a> {
    pub vulnerability_id: &'a str,
    pub aliases: &'a [String],
    pub severity: &'a str,
    pub summary: &'a str,
}

/// An advisory on the package that the chosen version does not fix.
#[derive(Clone, Debug)]
pub struct NotFixed<'a> {
    pub vulnerability_id: &'a str,
    pub reason: &'a str,
}

impl<'a> From<&'a Advisory> for AdvisoryFacts<'a> {
    fn from(a: &'a Advisory) -> Self {
        AdvisoryFacts {
            vulnerability_id: &a.vulnerability_id,
            aliases: &a.aliases,
            severity: &a.severity,
            summary: &a.summary,
        }
    }
}

impl<'a> From<&'a RemediationTarget> for AdvisoryFacts<'a> {
    fn from(target: &'a RemediationTarget) -> Self {
        AdvisoryFacts {
            vulnerability_id: &target.facts.vulnerability_id,
            aliases: &target.facts.aliases,
            severity: &target.facts.severity,
            summary: &target.facts.summary,
        }
    }
}

impl<'a> From<&'a Remaining> for NotFixed<'a> {
    fn from(r: &'a Remaining) -> Self {
        NotFixed {
            vulnerability_id: &r.advisory.vulnerability_id,
            reason: &r.reason,
        }
    }
}

/// GitHub refuses titles longer than 256 characters.
const MAX_TITLE_CHARS: usize = 256;
/// Per free-text field in the body; forges cap bodies at about 64 KiB.
const MAX_FIELD_CHARS: usize = 4000;
const MAX_LISTED_FILES: usize = 100;
const MAX_BRANCH_LEN: usize = 100;
const BRANCH_PREFIX: &str = "remediator/";

/// Advisory ids listed in a title before the rest are counted ("GHSA-a and 3 more").
const MAX_TITLE_IDS: usize = 3;

/// A Dependabot/Renovate style title:
/// "fix(deps): bump lodash from 4.17.20 to 4.17.21 [GHSA-xxxx]", or
/// "fix(deps): remediate CVE-2024-1 in lodash" when there is no target version. With several
/// advisories: "[GHSA-a, GHSA-b]", or "[GHSA-a and 3 more]" past three.
pub fn title(f: &PrFacts) -> String {
    let ids: Vec<String> = std::iter::once(f.advisory.vulnerability_id)
        .chain(f.also_fixes.iter().map(|a| a.vulnerability_id))
        .map(one_line)
        .collect();
    let id = if ids.len() > MAX_TITLE_IDS {
        format!("{} and {} more", ids[0], ids.len() - 1)
    } else {
        ids.join(", ")
    };
    let package = one_line(f.package);
    let title = match f.to_version {
        Some(to) => format!(
            "fix(deps): bump {package} from {} to {} [{id}]",
            one_line(f.from_version),
            one_line(to)
        ),
        None => format!("fix(deps): remediate {id} in {package}"),
    };
    truncate_chars(&title, MAX_TITLE_CHARS)
}

/// The markdown body: the vulnerability (linked to its advisory), what changed and why, who
/// wrote the change, and the operation id to trace it back.
pub fn body(f: &PrFacts) -> String {
    let mut out = sections(f);
    out.push_str(&footer(f.operation_id));
    out
}

/// The body without its footer: what one package's part of a grouped pull request says.
fn sections(f: &PrFacts) -> String {
    let mut out = String::new();
    intro(&mut out, f);
    vulnerability(&mut out, f);
    also_fixed(&mut out, f.also_fixes);
    if !f.not_fixed.is_empty() {
        out.push_str("\n### Not fixed by this change\n\n");
        not_fixed_list(&mut out, f.not_fixed);
    }
    why(&mut out, f);
    what_changed(&mut out, f.changed_files);
    how_it_was_made(&mut out, f);
    for paragraph in f.lock.paragraphs(f.package) {
        let _ = writeln!(out, "\n{paragraph}");
    }
    if let Some(tests) = f.tests {
        let _ = write!(out, "\n{}", test_notes::section(tests));
    }
    out
}

/// The opening sentence: the advisories this change remediates, linked.
fn intro(out: &mut String, f: &PrFacts) {
    let package = escape(f.package);
    let ecosystem = escape(f.ecosystem);
    let mut links = vec![advisory_link(f.advisory.vulnerability_id)];
    links.extend(
        f.also_fixes
            .iter()
            .map(|a| advisory_link(a.vulnerability_id)),
    );
    let _ = if links.len() == 1 {
        writeln!(
            out,
            "This pull request remediates {} in **{package}** ({ecosystem}).\n",
            links[0]
        )
    } else {
        writeln!(
            out,
            "This pull request remediates {} advisories in **{package}** ({ecosystem}): {}.\n",
            links.len(),
            links.join(", ")
        )
    };
}

/// "### Vulnerability": id, aliases, severity, package and the version change.
fn vulnerability(out: &mut String, f: &PrFacts) {
    out.push_str("### Vulnerability\n\n");
    let _ = writeln!(
        out,
        "- **ID:** {}",
        advisory_link(f.advisory.vulnerability_id)
    );
    if !f.advisory.aliases.is_empty() {
        let aliases: Vec<String> = f
            .advisory
            .aliases
            .iter()
            .map(|a| advisory_link(a))
            .collect();
        let _ = writeln!(out, "- **Aliases:** {}", aliases.join(", "));
    }
    let _ = writeln!(out, "- **Severity:** {}", escape(f.advisory.severity));
    let _ = writeln!(
        out,
        "- **Package:** {} ({})",
        escape(f.package),
        escape(f.ecosystem)
    );
    match f.to_version {
        Some(to) => {
            let _ = writeln!(
                out,
                "- **Version:** {} → {}",
                escape(f.from_version),
                escape(to)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- **Affected version:** {} (fixed by a code change, not a version bump)",
                escape(f.from_version)
            );
        }
    }
}

/// "### Also fixed by this change": the package's other advisories, when there are any.
fn also_fixed(out: &mut String, also_fixes: &[AdvisoryFacts]) {
    if also_fixes.is_empty() {
        return;
    }
    out.push_str("\n### Also fixed by this change\n\n");
    for other in also_fixes {
        let aliases: Vec<String> = other.aliases.iter().map(|a| advisory_link(a)).collect();
        let aliases = if aliases.is_empty() {
            String::new()
        } else {
            format!(" ({})", aliases.join(", "))
        };
        let summary = other.summary.trim();
        let summary = if summary.is_empty() {
            String::new()
        } else {
            format!(": {}", escape(&one_line(summary)))
        };
        let _ = writeln!(
            out,
            "- {}{aliases}, severity {}{summary}",
            advisory_link(other.vulnerability_id),
            escape(other.severity)
        );
    }
}

/// One line per advisory left unfixed, with why (under a heading the caller writes).
fn not_fixed_list(out: &mut String, not_fixed: &[NotFixed]) {
    for left in not_fixed {
        let _ = writeln!(
            out,
            "- {}: {}",
            advisory_link(left.vulnerability_id),
            escape(left.reason)
        );
    }
}

/// "### Why": the advisory's summary, then how the change fixes it.
fn why(out: &mut String, f: &PrFacts) {
    out.push_str("\n### Why\n\n");
    let summary = f.advisory.summary.trim();
    if summary.is_empty() {
        out.push_str("The advisory gives no summary.\n");
    } else {
        let _ = writeln!(out, "{}", escape(summary));
    }
    // The lock step's strategy, when it replaced the patch's (a parent upgrade instead of
    // the lock-only update the patch planned), is the one explanation: not both.
    let how = match f.lock.strategy {
        [] => f
            .explanation
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(escape),
        lines => Some(
            lines
                .iter()
                .map(LabelledLine::markdown)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    };
    if let Some(how) = how {
        let _ = writeln!(out, "\n**How the change fixes it:**\n\n{how}");
    }
}

/// "### What changed": the changed files, the first [`MAX_LISTED_FILES`] of them.
fn what_changed(out: &mut String, changed_files: &[String]) {
    out.push_str("\n### What changed\n\n");
    if changed_files.is_empty() {
        out.push_str("- (no files listed)\n");
    }
    for file in changed_files.iter().take(MAX_LISTED_FILES) {
        let _ = writeln!(out, "- {}", escape(file));
    }
    if changed_files.len() > MAX_LISTED_FILES {
        let _ = writeln!(
            out,
            "- … and {} more",
            changed_files.len() - MAX_LISTED_FILES
        );
    }
}

/// "### How this change was made": the model and its confidence, or the deterministic bump.
fn how_it_was_made(out: &mut String, f: &PrFacts) {
    out.push_str("\n### How this change was made\n\n");
    match f.written_by_llm {
        Some(model) => {
            let confidence = f
                .confidence
                .filter(|c| c.is_finite())
                .map(|c| format!(" with confidence {c:.2}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "The patch was written by the language model **{}**{confidence}, then applied and checked against Remediator's patch policy. Review it with care before merging.",
                escape(model)
            );
        }
        None => {
            out.push_str(
                "Deterministic version bump made by Remediator; no language model was involved.\n",
            );
        }
    }
}

fn footer(operation_id: OperationId) -> String {
    format!("\n---\n\nOpened by Remediator, operation `{operation_id}`.\n")
}

/// One package of a repository-grouped pull request (its lock step's part in `facts.lock`).
#[derive(Clone, Debug)]
pub struct GroupedPackage<'a> {
    pub facts: PrFacts<'a>,
}

/// The branch of a repository-grouped fix: `remediator/<ecosystem>-security-updates`.
pub fn group_branch_name(ecosystem: &str) -> String {
    branch_name(ecosystem, "security-updates")
}

/// "fix(deps): security updates for 2 npm packages (lodash 4.17.22, axios 0.21.2)".
pub fn group_title(ecosystem: &str, packages: &[GroupedPackage<'_>]) -> String {
    let list: Vec<String> = packages
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                one_line(p.facts.package),
                one_line(p.facts.to_version.unwrap_or("?"))
            )
        })
        .collect();
    let noun = if packages.len() == 1 {
        "package"
    } else {
        "packages"
    };
    truncate_chars(
        &format!(
            "fix(deps): security updates for {} {} {noun} ({})",
            packages.len(),
            one_line(ecosystem),
            list.join(", ")
        ),
        MAX_TITLE_CHARS,
    )
}

/// The body of a repository-grouped pull request: a list of the packages, then each one's
/// sections as a package pull request would have them, and one footer.
pub fn group_body(
    ecosystem: &str,
    packages: &[GroupedPackage<'_>],
    not_fixed: &[NotFixed<'_>],
    tests: Option<&crate::verify::report::TestsReport>,
    operation_id: OperationId,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "This pull request carries every pending security update of the {} packages of this repository:\n",
        escape(ecosystem)
    );
    for p in packages {
        let _ = writeln!(
            out,
            "- **{}** {} → {}",
            escape(p.facts.package),
            escape(p.facts.from_version),
            escape(p.facts.to_version.unwrap_or("?"))
        );
    }
    for p in packages {
        let _ = writeln!(
            out,
            "\n## {} {}\n",
            escape(p.facts.package),
            escape(p.facts.to_version.unwrap_or("?"))
        );
        out.push_str(&sections(&p.facts));
    }
    if !not_fixed.is_empty() {
        out.push_str("\n## Not fixed by this change\n\n");
        not_fixed_list(&mut out, not_fixed);
    }
    if let Some(tests) = tests {
        let _ = write!(out, "\n{}", test_notes::section(tests));
    }
    out.push_str(&footer(operation_id));
    out
}

/// The branch of a package fix: one per package, not per advisory, so every advisory the
/// version fixes shares it: "remediator/<ecosystem-slug>-<package-slug>" (for example
/// `remediator/npm-lodash`),
/// lowercase, only `[a-z0-9._-]` after the prefix, no "..", no trailing ".lock", '.' or '/',
/// at most 100 bytes, so it is always a valid git ref name. Parts that slug to nothing (all
/// non-ASCII) and over-long names get a stable hash of the input so they stay distinct.
pub fn branch_name(ecosystem: &str, package: &str) -> String {
    let part = |raw: &str| {
        let slug = slug(raw);
        if slug.is_empty() {
            format!("x{}", stable_hash_hex(raw))
        } else {
            slug
        }
    };
    let mut name = format!("{BRANCH_PREFIX}{}-{}", part(ecosystem), part(package));
    if name.len() > MAX_BRANCH_LEN {
        let hash = stable_hash_hex(&format!("{ecosystem}\0{package}"));
        // Slugs are ASCII, so any byte index is a char boundary.
        name.truncate(MAX_BRANCH_LEN - hash.len() - 1);
        let kept = name.trim_end_matches(['-', '.', '_']).len();
        name.truncate(kept);
        name.push('-');
        name.push_str(&hash);
    }
    if name.ends_with(".lock") {
        let dot = name.len() - ".lock".len();
        name.replace_range(dot..dot + 1, "-");
    }
    name
}

/// Lowercase ASCII letters, digits, '.', '_' and '-'; everything else becomes '-'. Runs of
/// '-' and '.' collapse, and separators are trimmed from both ends so the part never starts a
/// ref component with '.' and never forms "..".
fn slug(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let mapped = match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        };
        let previous = out.chars().last();
        if (mapped == '-' && previous == Some('-')) || (mapped == '.' && previous == Some('.')) {
            continue;
        }
        out.push(mapped);
    }
    out.trim_matches(['-', '.', '_']).to_owned()
}

/// FNV-1a, 32 bits: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn stable_hash_hex(text: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// The advisory page for a vulnerability id, or `None` when the id has characters that do not
/// belong in a URL.
pub fn advisory_url(id: &str) -> Option<String> {
    let plain = !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        && id.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !plain {
        return None;
    }
    let upper = id.to_ascii_uppercase();
    Some(if upper.starts_with("GHSA-") {
        format!("https://github.com/advisories/{id}")
    } else if upper.starts_with("CVE-") {
        format!("https://nvd.nist.gov/vuln/detail/{upper}")
    } else {
        format!("https://osv.dev/vulnerability/{id}")
    })
}

fn advisory_link(id: &str) -> String {
    let text = escape(id);
    match advisory_url(id) {
        Some(url) => format!("[{text}]({url})"),
        None => text,
    }
}

/// Makes outside text inert in GitHub-flavoured markdown, escaping only what markdown would
/// read as syntax, so versions, hosts and file names stay as they are (`1.5.4`,
/// `package-lock.json`) in e-mail notifications and raw views:
///
/// - anywhere: `\` `` ` `` `*` `_` `[` `]` `<` `&` `|` `~` `$` (escapes, code, emphasis,
///   links and images, HTML and autolinks, entities, tables, strikethrough, math);
/// - at the start of a line: `#`, `>`, a `+` `-` `=` that would start a list item, rule or setext
///   underline, and the `.` or `)` that would make a number an ordered list marker;
/// - URL autolinks: the `://` of a scheme and the `.` of a leading `www.`;
/// - `@` gets a zero-width space after it, so it cannot mention anyone (or form an e-mail
///   autolink); control characters and bidi overrides are dropped; the text is capped.
pub fn escape(text: &str) -> String {
    let text = truncate_chars(text, MAX_FIELD_CHARS).replace("\r\n", "\n");
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut line_start = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            out.push('\n');
            line_start = true;
            i += 1;
            continue;
        }
        if let Some(taken) = escape_run(&chars, i, line_start, &mut out) {
            i += taken;
            line_start = false;
            continue;
        }
        escape_char(c, chars.get(i + 1).copied(), line_start, &mut out);
        // Leading spaces keep a line's start; anything else ends it.
        if c != ' ' {
            line_start = false;
        }
        i += 1;
    }
    out
}

/// Escapes one character of [`escape`]'s input; `next` is the one after it.
fn escape_char(c: char, next: Option<char>, line_start: bool, out: &mut String) {
    match c {
        '@' => out.push_str("\\@\u{200B}"),
        '\t' => out.push(' '),
        c if c.is_control() => {}
        // Unicode bidi overrides can make text read differently than it is.
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {}
        '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '&' | '|' | '~' | '$' => {
            out.push('\\');
            out.push(c);
        }
        // A heading, or a list item, thematic break or setext underline: the marker is
        // followed by a space, the end of the line, or more of itself.
        '#' | '>' if line_start => {
            out.push('\\');
            out.push(c);
        }
        '+' | '-' | '='
            if line_start && next.is_none_or(|n| n == ' ' || n == '\t' || n == '\n' || n == c) =>
        {
            out.push('\\');
            out.push(c);
        }
        c => out.push(c),
    }
}

/// The runs of several characters that markdown would read as a link or a list marker, at
/// `chars[i]`: writes them escaped and returns how many characters they took, or `None` when
/// no such run starts there.
fn escape_run(chars: &[char], i: usize, line_start: bool, out: &mut String) -> Option<usize> {
    let next = |n: usize| chars.get(i + n).copied();
    match chars[i] {
        ':' if next(1) == Some('/') && next(2) == Some('/') => {
            out.push_str("\\:\\/\\/");
            Some(3)
        }
        'w' | 'W'
            if (i == 0 || !chars[i - 1].is_alphanumeric())
                && chars.len() >= i + 4
                && chars[i..i + 3].iter().all(|w| w.eq_ignore_ascii_case(&'w'))
                && chars[i + 3] == '.' =>
        {
            out.extend(&chars[i..i + 3]);
            out.push_str("\\.");
            Some(4)
        }
        c if c.is_ascii_digit() && line_start => Some(escape_line_number(&chars[i..], out)),
        _ => None,
    }
}

/// Digits at the start of a line, escaping the '.' or ')' after them that would make them an
/// ordered list marker; returns how many characters that took.
fn escape_line_number(chars: &[char], out: &mut String) -> usize {
    let digits = chars.iter().take_while(|d| d.is_ascii_digit()).count();
    out.extend(&chars[..digits]);
    let ends_marker = chars
        .get(digits + 1)
        .is_none_or(|n| matches!(n, ' ' | '\t' | '\n'));
    match chars.get(digits).copied() {
        Some(marker @ ('.' | ')')) if ends_marker => {
            out.push('\\');
            out.push(marker);
            digits + 1
        }
        _ => digits,
    }
}

/// Text for a single-line context (the title): control characters and line breaks become
/// spaces, runs of whitespace collapse.
fn one_line(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, the last one '…' when something was cut.
fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
