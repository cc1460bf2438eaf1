//! What the scanner formats share: deterministic ids, the OSV vocabulary for ecosystems, one
//! severity scale, version lists, and the row builder that merges duplicate matches into the
//! native rows.

use std::cmp::Ordering;
use std::collections::HashMap;

use uuid::Uuid;

use super::native::{AssessmentIn, FindingIn, ImportFile};
use super::purl::Purl;
use crate::db::models::AssessmentStatus;
use crate::ecosystem::Ecosystem;
use crate::lifecycle::{AssessmentId, FindingId, ProjectId};
use crate::patch::bump::Version;

/// The finding a scanner match becomes. Derived, never random, so importing the same report
/// twice upserts the same rows. The project id is the namespace; the JSON array encoding keeps
/// the three strings apart whatever characters they hold.
pub fn finding_id(
    project: ProjectId,
    vulnerability: &str,
    package: &str,
    version: &str,
) -> FindingId {
    let name = serde_json::json!([vulnerability, package, version]).to_string();
    FindingId(Uuid::new_v5(&project.0, name.as_bytes()))
}

/// A finding's one assessment from a scanner report.
pub fn assessment_id(finding: FindingId) -> AssessmentId {
    AssessmentId(Uuid::new_v5(&finding.0, b"assessment"))
}

/// Severity on the scale findings use, ordered so the worst of several wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }

    /// Reads a scanner's label (GitHub's `MODERATE`, Grype's `Negligible`, CycloneDX's `info`
    /// and `none` all land on the nearest band) or a bare CVSS score. Anything else, including
    /// a CVSS vector, is `Unknown`.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "critical" => Self::Critical,
            "high" | "important" => Self::High,
            "medium" | "moderate" => Self::Medium,
            "low" | "negligible" | "info" | "informational" | "none" => Self::Low,
            _ => text.parse::<f64>().map_or(Self::Unknown, Self::from_score),
        }
    }

    /// The CVSS v3 qualitative bands; 0.0 ("None") counts as low.
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s.is_nan() || !(0.0..=10.0).contains(&s) => Self::Unknown,
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            _ => Self::Low,
        }
    }
}

/// OSV's spelling of the ecosystems, matched case-insensitively. A distro release suffix
/// (`Debian:12`) is kept.
const OSV_ECOSYSTEMS: &[&str] = &[
    "npm",
    "PyPI",
    "crates.io",
    "Go",
    "Maven",
    "RubyGems",
    "NuGet",
    "Packagist",
    "Pub",
    "Hex",
    "Hackage",
    "CRAN",
    "SwiftURL",
    "GitHub Actions",
    "ConanCenter",
    "Bitnami",
    "Debian",
    "Ubuntu",
    "Alpine",
    "Wolfi",
    "Chainguard",
    "Red Hat",
    "Rocky Linux",
    "AlmaLinux",
    "openSUSE",
    "SUSE",
    "Photon OS",
    "Linux",
    "Android",
];

/// Normalises an ecosystem name to OSV's spelling; unknown names pass through trimmed.
pub fn normalize_ecosystem(name: &str) -> String {
    let name = name.trim();
    let (base, suffix) = match name.split_once(':') {
        Some((base, suffix)) => (base, Some(suffix)),
        None => (name, None),
    };
    let lowered = base.to_ascii_lowercase();
    let canonical = match lowered.as_str() {
        "golang" => Some("Go"),
        "pip" | "python" => Some("PyPI"),
        "cargo" | "crates" => Some("crates.io"),
        "gem" | "gems" => Some("RubyGems"),
        "composer" => Some("Packagist"),
        _ => OSV_ECOSYSTEMS
            .iter()
            .copied()
            .find(|e| e.eq_ignore_ascii_case(base)),
    };
    match (canonical, suffix) {
        (Some(c), Some(s)) => format!("{c}:{s}"),
        (Some(c), None) => c.to_owned(),
        (None, _) => name.to_owned(),
    }
}

/// The OSV ecosystem of a purl type; distro packages are told apart by the namespace.
pub fn ecosystem_of_purl(purl: &Purl) -> Option<&'static str> {
    let namespace = purl.namespace.as_deref().unwrap_or("").to_ascii_lowercase();
    Some(match purl.kind.as_str() {
        "npm" => "npm",
        "pypi" => "PyPI",
        "cargo" => "crates.io",
        "golang" => "Go",
        "maven" => "Maven",
        "gem" => "RubyGems",
        "nuget" => "NuGet",
        "composer" => "Packagist",
        "pub" => "Pub",
        "hex" => "Hex",
        "hackage" => "Hackage",
        "cran" => "CRAN",
        "swift" => "SwiftURL",
        "conan" => "ConanCenter",
        "bitnami" => "Bitnami",
        "deb" if namespace == "ubuntu" => "Ubuntu",
        "deb" => "Debian",
        "apk" if namespace == "wolfi" => "Wolfi",
        "apk" if namespace == "chainguard" => "Chainguard",
        "apk" => "Alpine",
        "rpm" => match namespace.as_str() {
            "redhat" | "rhel" => "Red Hat",
            "rocky" | "rockylinux" => "Rocky Linux",
            "almalinux" => "AlmaLinux",
            "opensuse" => "openSUSE",
            "suse" | "sles" => "SUSE",
            _ => return None,
        },
        _ => return None,
    })
}

/// The OSV ecosystem of a Grype/Syft package type (`grype -o json`'s `artifact.type`).
pub fn ecosystem_of_grype_type(kind: &str) -> Option<&'static str> {
    Some(match kind.trim().to_ascii_lowercase().as_str() {
        "npm" => "npm",
        "python" => "PyPI",
        "go-module" => "Go",
        "java-archive" | "jenkins-plugin" | "graalvm-native-image" => "Maven",
        "gem" => "RubyGems",
        "rust-crate" => "crates.io",
        "dotnet" => "NuGet",
        "php-composer" => "Packagist",
        "dart-pub" => "Pub",
        "hex" => "Hex",
        "hackage" => "Hackage",
        "r-package" => "CRAN",
        "swift" => "SwiftURL",
        "github-action" | "github-action-workflow" => "GitHub Actions",
        "conan" => "ConanCenter",
        "deb" => "Debian",
        "apk" => "Alpine",
        _ => return None,
    })
}

/// The OSV ecosystem of a Grype/Syft `language`, the last resort when type and purl say nothing.
pub fn ecosystem_of_language(language: &str) -> Option<&'static str> {
    Some(match language.trim().to_ascii_lowercase().as_str() {
        "javascript" => "npm",
        "python" => "PyPI",
        "go" => "Go",
        "java" => "Maven",
        "ruby" => "RubyGems",
        "rust" => "crates.io",
        "dotnet" => "NuGet",
        "php" => "Packagist",
        "dart" => "Pub",
        "erlang" | "elixir" => "Hex",
        "haskell" => "Hackage",
        "r" => "CRAN",
        "swift" => "SwiftURL",
        _ => return None,
    })
}

/// Trimmed, deduplicated and in version order (`1.2.10` after `1.2.9`); strings that are not
/// versions go last, alphabetically.
pub fn sorted_versions(versions: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut list: Vec<String> = versions
        .into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    list.sort_by(|a, b| compare_versions(a, b));
    list.dedup();
    list
}

fn compare_versions(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// One vulnerable package as a scanner reports it, before ids are derived.
#[derive(Debug, Clone)]
pub struct Match {
    pub vulnerability_id: String,
    pub aliases: Vec<String>,
    pub severity: Severity,
    pub summary: String,
    pub package_name: String,
    pub ecosystem: String,
    pub purl: Option<String>,
    pub installed_version: String,
    pub fixed_versions: Vec<String>,
    pub status: AssessmentStatus,
    pub justification: Option<String>,
    /// No VEX statement behind `status`: insert it, never overwrite a triaged one.
    pub keep_existing: bool,
}

/// Collects matches into findings and assessments for one project. The same vulnerability on
/// the same package version reported twice (two lockfiles, two matchers) is one finding: the
/// lists are merged, the worse severity and the first summary and status kept.
pub struct Rows {
    project: ProjectId,
    findings: Vec<FindingIn>,
    assessments: Vec<AssessmentIn>,
    by_id: HashMap<FindingId, usize>,
    severities: Vec<Severity>,
}

impl Rows {
    pub fn new(project: ProjectId) -> Self {
        Self {
            project,
            findings: Vec::new(),
            assessments: Vec::new(),
            by_id: HashMap::new(),
            severities: Vec::new(),
        }
    }

    pub fn push(&mut self, m: Match) {
        let id = finding_id(
            self.project,
            &m.vulnerability_id,
            &m.package_name,
            &m.installed_version,
        );
        if let Some(&i) = self.by_id.get(&id) {
            let finding = &mut self.findings[i];
            finding.aliases = merged_aliases(
                &finding.vulnerability_id,
                finding.aliases.drain(..).chain(m.aliases),
            );
            finding.fixed_versions =
                sorted_versions(finding.fixed_versions.drain(..).chain(m.fixed_versions));
            if m.severity > self.severities[i] {
                self.severities[i] = m.severity;
                finding.severity = m.severity.as_str().to_owned();
            }
            if finding.summary.is_empty() {
                finding.summary = m.summary;
            }
            if finding.purl.is_none() {
                finding.purl = m.purl;
            }
            self.assessments[i].keep_existing &= m.keep_existing;
            return;
        }
        self.by_id.insert(id, self.findings.len());
        self.severities.push(m.severity);
        self.findings.push(FindingIn {
            id,
            project_id: self.project,
            project_version_id: None,
            aliases: merged_aliases(&m.vulnerability_id, m.aliases),
            vulnerability_id: m.vulnerability_id,
            severity: m.severity.as_str().to_owned(),
            summary: m.summary,
            package_name: m.package_name,
            ecosystem: Ecosystem::parse(&m.ecosystem),
            purl: m.purl,
            installed_version: m.installed_version,
            fixed_versions: sorted_versions(m.fixed_versions),
        });
        self.assessments.push(AssessmentIn {
            id: assessment_id(id),
            finding_id: id,
            status: m.status.as_str().to_owned(),
            justification: m.justification,
            keep_existing: m.keep_existing,
        });
    }

    pub fn finish(self) -> ImportFile {
        ImportFile {
            findings: self.findings,
            assessments: self.assessments,
            ..ImportFile::default()
        }
    }
}

fn merged_aliases(own_id: &str, aliases: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut list: Vec<String> = aliases
        .into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty() && a != own_id)
        .collect();
    list.sort();
    list.dedup();
    list
}

/// The first line of a longer text, for a summary when a scanner gives only details.
pub fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_keyed_by_all_four_parts() {
        let project = ProjectId::new_random();
        let id = finding_id(project, "GHSA-1", "lodash", "4.17.20");
        assert_eq!(id, finding_id(project, "GHSA-1", "lodash", "4.17.20"));
        assert_eq!(id.0.get_version_num(), 5);
        assert_ne!(
            id,
            finding_id(ProjectId::new_random(), "GHSA-1", "lodash", "4.17.20")
        );
        assert_ne!(id, finding_id(project, "GHSA-2", "lodash", "4.17.20"));
        assert_ne!(id, finding_id(project, "GHSA-1", "lodash", "4.17.21"));
        assert_ne!(id, finding_id(project, "GHSA-1", "lodash.x", "4.17.20"));
        // No separator ambiguity.
        assert_ne!(
            finding_id(project, "a", "b c", "d"),
            finding_id(project, "a b", "c", "d")
        );
        assert_eq!(assessment_id(id), assessment_id(id));
        assert_ne!(assessment_id(id).0, id.0);
    }

    #[test]
    fn severities_land_on_one_scale() {
        for (text, want) in [
            ("CRITICAL", Severity::Critical),
            ("High", Severity::High),
            ("MODERATE", Severity::Medium),
            ("medium", Severity::Medium),
            ("Negligible", Severity::Low),
            ("info", Severity::Low),
            ("Unknown", Severity::Unknown),
            ("", Severity::Unknown),
            ("9.8", Severity::Critical),
            ("7.5", Severity::High),
            ("5.3", Severity::Medium),
            ("2.0", Severity::Low),
            ("11", Severity::Unknown),
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                Severity::Unknown,
            ),
        ] {
            assert_eq!(Severity::parse(text), want, "{text:?}");
        }
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Unknown);
    }

    #[test]
    fn ecosystems_use_osv_names() {
        assert_eq!(normalize_ecosystem("pypi"), "PyPI");
        assert_eq!(normalize_ecosystem("golang"), "Go");
        assert_eq!(normalize_ecosystem("CRATES.IO"), "crates.io");
        assert_eq!(normalize_ecosystem("debian:12"), "Debian:12");
        assert_eq!(normalize_ecosystem(" npm "), "npm");
        assert_eq!(normalize_ecosystem("Something Else"), "Something Else");

        let eco = |purl: &str| ecosystem_of_purl(&Purl::parse(purl).unwrap());
        assert_eq!(eco("pkg:pypi/django@3.2.0"), Some("PyPI"));
        assert_eq!(eco("pkg:cargo/time@0.1.43"), Some("crates.io"));
        assert_eq!(eco("pkg:golang/golang.org/x/net@v0.7.0"), Some("Go"));
        assert_eq!(eco("pkg:deb/ubuntu/openssl@3.0.2"), Some("Ubuntu"));
        assert_eq!(eco("pkg:rpm/redhat/openssl@3.0.7"), Some("Red Hat"));
        assert_eq!(eco("pkg:generic/thing@1"), None);

        assert_eq!(ecosystem_of_grype_type("python"), Some("PyPI"));
        assert_eq!(ecosystem_of_grype_type("go-module"), Some("Go"));
        assert_eq!(ecosystem_of_grype_type("java-archive"), Some("Maven"));
        assert_eq!(ecosystem_of_grype_type("rust-crate"), Some("crates.io"));
        assert_eq!(ecosystem_of_grype_type("binary"), None);
        assert_eq!(ecosystem_of_language("javascript"), Some("npm"));
    }

    #[test]
    fn version_lists_are_sorted_as_versions_and_deduplicated() {
        let list = sorted_versions(
            [
                "4.17.21",
                "10.0.0",
                " 4.17.21",
                "4.17.9",
                "",
                "main",
                "2.0.0-rc.1",
                "2.0.0",
            ]
            .map(String::from),
        );
        assert_eq!(
            list,
            ["2.0.0-rc.1", "2.0.0", "4.17.9", "4.17.21", "10.0.0", "main"].map(String::from)
        );
    }
}
