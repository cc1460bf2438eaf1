//! OSV-Scanner reports (`osv-scanner --format json`): `results[].packages[]`, each a package
//! with the OSV records that affect it and the `groups` OSV-Scanner forms from aliases. One
//! group is one finding: the records of a group describe the same vulnerability under several
//! ids. OSV-Scanner makes no VEX statement, so every finding gets an AFFECTED assessment
//! (a match on an installed version is affected until someone triages it), inserted only if
//! the finding has none yet.

use crate::lifecycle::ProjectId;
use anyhow::bail;
use serde::Deserialize;
use serde_json::Value;

use super::native::ImportFile;
use super::scanner::{Match, Rows, Severity, first_line, normalize_ecosystem};
use crate::db::models::AssessmentStatus;

#[derive(Debug, Deserialize)]
struct Report {
    results: Vec<SourceResult>,
}

#[derive(Debug, Deserialize)]
struct SourceResult {
    #[serde(default)]
    packages: Vec<PackageResult>,
}

#[derive(Debug, Deserialize)]
struct PackageResult {
    package: Package,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
    #[serde(default)]
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    ecosystem: Option<String>,
    #[serde(default)]
    commit: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    details: String,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    /// Free-form per database; GitHub's carries `severity` (`HIGH`, `MODERATE`, ...).
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<AffectedPackage>,
    #[serde(default)]
    ranges: Vec<Range>,
}

#[derive(Debug, Deserialize)]
struct AffectedPackage {
    #[serde(default)]
    name: String,
    #[serde(default)]
    ecosystem: String,
}

#[derive(Debug, Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    fixed: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SeverityEntry {
    score: String,
}

#[derive(Debug, Deserialize)]
struct Group {
    ids: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    /// A CVSS score as text (`"7.5"`), empty when none is known.
    #[serde(default)]
    max_severity: Option<Value>,
}

const WHAT: &str = "OSV-Scanner file";

pub fn convert(text: &str, project: ProjectId) -> anyhow::Result<ImportFile> {
    let report: Report = super::deserialize(text, WHAT)?;
    let mut rows = Rows::new(project);
    for (i, result) in report.results.iter().enumerate() {
        for (j, entry) in result.packages.iter().enumerate() {
            let at = format!("results[{i}].packages[{j}].package");
            let package = &entry.package;
            let version = package.version.as_deref().unwrap_or("").trim();
            if version.is_empty() {
                if package.commit.is_some() {
                    // A git checkout scanned by commit: there is no package version to bump.
                    tracing::warn!(
                        package = %package.name,
                        "skipping an OSV-Scanner result pinned by commit, not by version"
                    );
                    continue;
                }
                bail!("invalid {WHAT} at `{at}.version`: missing or empty");
            }
            if package.name.trim().is_empty() {
                bail!("invalid {WHAT} at `{at}.name`: missing or empty");
            }
            let ecosystem = package.ecosystem.as_deref().unwrap_or("").trim();
            if ecosystem.is_empty() {
                bail!("invalid {WHAT} at `{at}.ecosystem`: missing or empty");
            }
            for group in groups_of(entry) {
                rows.push(group_match(package, version, ecosystem, &group));
            }
        }
    }
    Ok(rows.finish())
}

/// A set of records that are one vulnerability, with what OSV-Scanner says about the set.
struct GroupView<'a> {
    members: Vec<&'a Vulnerability>,
    aliases: Vec<String>,
    max_severity: Severity,
}

/// The package's groups; records no group mentions (older reports have no `groups`) are a
/// group of their own.
fn groups_of(entry: &PackageResult) -> Vec<GroupView<'_>> {
    let mut groups: Vec<GroupView<'_>> = entry
        .groups
        .iter()
        .map(|g| GroupView {
            members: g
                .ids
                .iter()
                .filter_map(|id| entry.vulnerabilities.iter().find(|v| &v.id == id))
                .collect(),
            aliases: g.ids.iter().chain(&g.aliases).cloned().collect(),
            max_severity: match &g.max_severity {
                Some(Value::String(s)) => Severity::parse(s),
                Some(Value::Number(n)) => {
                    n.as_f64().map_or(Severity::Unknown, Severity::from_score)
                }
                _ => Severity::Unknown,
            },
        })
        .filter(|g| !g.members.is_empty())
        .collect();
    for v in &entry.vulnerabilities {
        if !groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.id == v.id))
        {
            groups.push(GroupView {
                members: vec![v],
                aliases: Vec::new(),
                max_severity: Severity::Unknown,
            });
        }
    }
    groups
}

fn group_match(package: &Package, version: &str, ecosystem: &str, group: &GroupView<'_>) -> Match {
    // The ecosystem's own advisory id (GHSA-, PYSEC-, GO-, RUSTSEC-) names the finding rather
    // than a CVE: it is the record that carries the package's ranges.
    let primary = group
        .members
        .iter()
        .find(|v| !v.id.starts_with("CVE-"))
        .unwrap_or(&group.members[0]);
    let aliases = group
        .members
        .iter()
        .flat_map(|v| std::iter::once(v.id.clone()).chain(v.aliases.iter().cloned()))
        .chain(group.aliases.iter().cloned())
        .collect();
    let summary = std::iter::once(*primary)
        .chain(group.members.iter().copied())
        .map(|v| v.summary.trim())
        .find(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| first_line(&primary.details));
    Match {
        vulnerability_id: primary.id.clone(),
        aliases,
        severity: severity(group),
        summary,
        package_name: package.name.trim().to_owned(),
        ecosystem: normalize_ecosystem(ecosystem),
        purl: None,
        installed_version: version.to_owned(),
        fixed_versions: group
            .members
            .iter()
            .flat_map(|v| fixed_versions(v, &package.name, ecosystem))
            .collect(),
        status: AssessmentStatus::Affected,
        justification: Some(format!(
            "osv-scanner matched {} {version}; affected until triaged",
            package.name.trim()
        )),
        keep_existing: true,
    }
}

/// The database's own label first (GitHub's), then OSV-Scanner's group score, then any score
/// a record states as a number or a label. CVSS vectors are not scored here.
fn severity(group: &GroupView<'_>) -> Severity {
    let labelled = group
        .members
        .iter()
        .filter_map(|v| v.database_specific.as_ref()?.get("severity")?.as_str())
        .map(Severity::parse)
        .max()
        .unwrap_or(Severity::Unknown);
    if labelled != Severity::Unknown {
        return labelled;
    }
    if group.max_severity != Severity::Unknown {
        return group.max_severity;
    }
    group
        .members
        .iter()
        .flat_map(|v| &v.severity)
        .map(|s| Severity::parse(&s.score))
        .max()
        .unwrap_or(Severity::Unknown)
}

/// `fixed` events of the record's ranges for this package (all its ranges when no `affected`
/// entry names the package). GIT ranges are skipped: their events are commits, not versions.
fn fixed_versions(v: &Vulnerability, name: &str, ecosystem: &str) -> Vec<String> {
    let base = |e: &str| {
        e.split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let ours: Vec<&Affected> = v
        .affected
        .iter()
        .filter(|a| {
            a.package.as_ref().is_some_and(|p| {
                p.name.trim().eq_ignore_ascii_case(name.trim())
                    && base(&p.ecosystem) == base(ecosystem)
            })
        })
        .collect();
    let chosen: Vec<&Affected> = if ours.is_empty() {
        v.affected.iter().collect()
    } else {
        ours
    };
    chosen
        .iter()
        .flat_map(|a| &a.ranges)
        .filter(|r| !r.kind.eq_ignore_ascii_case("GIT"))
        .flat_map(|r| &r.events)
        .filter_map(|e| e.fixed.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::scanner::{assessment_id, finding_id};
    use crate::import::test_support::example;
    use crate::import::test_support::{assert_refused, finding};

    #[test]
    fn converts_the_example_report() {
        let project = ProjectId::new_random();
        let file = convert(&example("osv-scanner.json"), project).unwrap();
        assert_eq!(file.findings.len(), 4, "{:#?}", file.findings);
        assert_eq!(file.assessments.len(), 4);
        assert!(file.organizations.is_empty() && file.projects.is_empty());

        // The GHSA record names the finding; its CVE twin and the group's ids are aliases.
        let lodash = finding(&file, "GHSA-35jh-r3h4-6jhm");
        assert_eq!(
            lodash.id,
            finding_id(project, "GHSA-35jh-r3h4-6jhm", "lodash", "4.17.15")
        );
        assert_eq!(lodash.project_id, project);
        assert_eq!(lodash.aliases, ["CVE-2021-23337"]);
        assert_eq!(lodash.severity, "HIGH");
        assert_eq!(lodash.ecosystem.as_str(), "npm");
        assert_eq!(lodash.installed_version, "4.17.15");
        assert_eq!(lodash.fixed_versions, ["4.17.21"]);
        assert!(
            lodash.summary.contains("Command Injection"),
            "{}",
            lodash.summary
        );

        // MODERATE is medium; fixed versions from two ranges, in version order.
        let requests = finding(&file, "GHSA-j8r2-6x86-q33q");
        assert_eq!(requests.ecosystem.as_str(), "PyPI");
        assert_eq!(requests.severity, "MEDIUM");
        assert_eq!(requests.fixed_versions, ["2.31.0"]);
        assert_eq!(requests.aliases, ["CVE-2023-32681", "PYSEC-2023-74"]);

        // No database label: the group's CVSS score decides; only the package's own ranges.
        let net = finding(&file, "GO-2023-1571");
        assert_eq!(net.ecosystem.as_str(), "Go");
        assert_eq!(net.package_name, "golang.org/x/net");
        assert_eq!(net.severity, "HIGH");
        assert_eq!(net.fixed_versions, ["0.7.0"]);
        assert_eq!(
            net.summary,
            "Denial of service via crafted HTTP/2 stream in net/http and golang.org/x/net"
        );

        let zip = finding(&file, "GHSA-p6mc-m468-83gw");
        assert_eq!(zip.fixed_versions, ["4.17.19"]);

        for (f, a) in file.findings.iter().zip(&file.assessments) {
            assert_eq!(a.finding_id, f.id);
            assert_eq!(a.id, assessment_id(f.id));
            assert_eq!(a.status, "ASSESSMENT_STATUS_AFFECTED");
            assert!(
                a.keep_existing,
                "no VEX: a triaged status must survive a re-scan"
            );
        }
        // Deterministic: the same report gives the same rows.
        let again = convert(&example("osv-scanner.json"), project).unwrap();
        assert_eq!(again.findings, file.findings);
        assert_eq!(again.assessments, file.assessments);
    }

    #[test]
    fn ungrouped_records_and_duplicates_across_lockfiles() {
        let record = serde_json::json!({
            "id": "RUSTSEC-2020-0071", "aliases": ["CVE-2020-26235"],
            "details": "\n  Potential segfault in the time crate\n\nMore text.",
            "affected": [{"package": {"name": "time", "ecosystem": "crates.io"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"},
                              {"fixed": "0.2.23"}]},
                                     {"type": "GIT", "events": [{"fixed": "abc123"}]}]}],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"}]
        });
        let package = serde_json::json!({
            "package": {"name": "time", "version": "0.1.45", "ecosystem": "crates.io"},
            "vulnerabilities": [record]
        });
        let text = serde_json::json!({"results": [
            {"source": {"path": "a/Cargo.lock", "type": "lockfile"}, "packages": [package.clone()]},
            {"source": {"path": "b/Cargo.lock", "type": "lockfile"}, "packages": [package,
                {"package": {"name": "vendored", "commit": "deadbeef"}, "vulnerabilities": []}]}
        ]})
        .to_string();
        let file = convert(&text, ProjectId::new_random()).unwrap();
        assert_eq!(
            file.findings.len(),
            1,
            "one finding for the same package twice"
        );
        let f = &file.findings[0];
        assert_eq!(f.vulnerability_id, "RUSTSEC-2020-0071");
        assert_eq!(f.ecosystem.as_str(), "crates.io");
        assert_eq!(f.summary, "Potential segfault in the time crate");
        assert_eq!(f.severity, "UNKNOWN", "a CVSS vector alone is not scored");
        assert_eq!(
            f.fixed_versions,
            ["0.2.23"],
            "GIT range commits are not versions"
        );
    }

    /// Malformed reports, and what the error must name.
    const MALFORMED: &[(&str, &[&str])] = &[
        (
            r#"{"results": [{"packages": [{"package": {"name": "lodash", "version": 4}}]}]}"#,
            &["results[0].packages[0].package.version"],
        ),
        (
            r#"{"results": [{"packages": [{"package": {"name": "lodash", "version": "1.0.0"}}]}]}"#,
            &["results[0].packages[0].package.ecosystem"],
        ),
        (
            r#"{"results": [{"packages": [{"package": {"name": "x", "version": "1", "ecosystem": "npm"},
                "vulnerabilities": [{"aliases": []}]}]}]}"#,
            &["results[0].packages[0].vulnerabilities[0]", "id"],
        ),
    ];

    #[test]
    fn malformed_reports_name_the_bad_field() {
        for (text, names) in MALFORMED {
            assert_refused(convert, text, names);
        }
    }
}
