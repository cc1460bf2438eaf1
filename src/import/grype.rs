//! Grype reports (`grype -o json`): `matches[]`, each one vulnerability on one artifact (an
//! installed package). The related vulnerabilities (usually the CVE behind a GHSA) become
//! aliases. Grype makes no VEX statement, so every finding gets an AFFECTED assessment (a
//! match on an installed version is affected until someone triages it), inserted only if the
//! finding has none yet.

use crate::lifecycle::ProjectId;
use anyhow::bail;
use serde::Deserialize;
use serde_json::Value;

use super::native::ImportFile;
use super::purl::Purl;
use super::scanner::{
    Match, Rows, Severity, ecosystem_of_grype_type, ecosystem_of_language, ecosystem_of_purl,
    first_line,
};
use crate::db::models::AssessmentStatus;
use crate::ecosystem::Ecosystem;

#[derive(Debug, Deserialize)]
struct Report {
    matches: Vec<GrypeMatch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrypeMatch {
    vulnerability: Vulnerability,
    #[serde(default)]
    related_vulnerabilities: Vec<Related>,
    artifact: Artifact,
}

#[derive(Debug, Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// `[{"version": "3.1", "vector": ..., "metrics": {"baseScore": 7.2, ...}}]`, read loosely.
    #[serde(default)]
    cvss: Vec<Value>,
    #[serde(default)]
    fix: Option<Fix>,
}

#[derive(Debug, Deserialize)]
struct Fix {
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Related {
    id: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Artifact {
    name: String,
    version: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    purl: Option<String>,
}

const WHAT: &str = "Grype file";

pub fn convert(text: &str, project: ProjectId) -> anyhow::Result<ImportFile> {
    let report: Report = super::deserialize(text, WHAT)?;
    let mut rows = Rows::new(project);
    for (i, m) in report.matches.iter().enumerate() {
        let artifact = &m.artifact;
        let at = format!("matches[{i}].artifact");
        for (field, value) in [("name", &artifact.name), ("version", &artifact.version)] {
            if value.trim().is_empty() {
                bail!("invalid {WHAT} at `{at}.{field}`: must not be empty");
            }
        }
        if m.vulnerability.id.trim().is_empty() {
            bail!("invalid {WHAT} at `matches[{i}].vulnerability.id`: must not be empty");
        }
        let purl = artifact.purl.as_deref().and_then(Purl::parse);
        // Unknown kinds (a `binary` artifact, a generic purl) are kept as Grype spells them: the
        // finding is real even if no remediation handles that ecosystem.
        let ecosystem = purl
            .as_ref()
            .and_then(ecosystem_of_purl)
            .or_else(|| ecosystem_of_grype_type(&artifact.kind))
            .or_else(|| ecosystem_of_language(&artifact.language))
            .map(str::to_owned)
            .or_else(|| purl.as_ref().map(|p| p.kind.clone()))
            .unwrap_or_else(|| artifact.kind.trim().to_owned());
        if ecosystem.is_empty() {
            bail!(
                "invalid {WHAT} at `{at}.type`: cannot tell the ecosystem of {} {} \
                 (no type, purl or language)",
                artifact.name,
                artifact.version
            );
        }
        // Syft names a Java archive by its artifact id alone; the purl has the group too.
        let package_name = match &purl {
            Some(p)
                if Ecosystem::parse(&ecosystem) == Ecosystem::Maven && p.namespace.is_some() =>
            {
                p.package_name()
            }
            _ => artifact.name.trim().to_owned(),
        };
        let v = &m.vulnerability;
        rows.push(Match {
            vulnerability_id: v.id.trim().to_owned(),
            aliases: m
                .related_vulnerabilities
                .iter()
                .map(|r| r.id.clone())
                .collect(),
            severity: severity(m),
            summary: std::iter::once(v.description.as_deref())
                .chain(
                    m.related_vulnerabilities
                        .iter()
                        .map(|r| r.description.as_deref()),
                )
                .flatten()
                .map(first_line)
                .find(|s| !s.is_empty())
                .unwrap_or_default(),
            package_name: package_name.clone(),
            ecosystem,
            purl: artifact.purl.clone().filter(|p| !p.trim().is_empty()),
            installed_version: artifact.version.trim().to_owned(),
            fixed_versions: v
                .fix
                .as_ref()
                .map(|f| f.versions.clone())
                .unwrap_or_default(),
            status: AssessmentStatus::Affected,
            justification: Some(format!(
                "grype matched {package_name} {}; affected until triaged",
                artifact.version.trim()
            )),
            keep_existing: true,
        });
    }
    Ok(rows.finish())
}

/// Grype's label for the match, else the worst label of a related record, else the highest
/// CVSS base score Grype lists.
fn severity(m: &GrypeMatch) -> Severity {
    let own = Severity::parse(m.vulnerability.severity.as_deref().unwrap_or(""));
    if own != Severity::Unknown {
        return own;
    }
    let related = m
        .related_vulnerabilities
        .iter()
        .filter_map(|r| r.severity.as_deref())
        .map(Severity::parse)
        .max()
        .unwrap_or(Severity::Unknown);
    if related != Severity::Unknown {
        return related;
    }
    m.vulnerability
        .cvss
        .iter()
        .filter_map(|c| c.pointer("/metrics/baseScore")?.as_f64())
        .map(Severity::from_score)
        .max()
        .unwrap_or(Severity::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::example;
    use crate::import::test_support::{assert_lodash_4_17_20, assert_refused, finding};

    #[test]
    fn converts_the_example_report() {
        let project = ProjectId::new_random();
        let file = convert(&example("grype.json"), project).unwrap();
        assert_eq!(file.findings.len(), 4, "{:#?}", file.findings);

        let lodash = finding(&file, "GHSA-35jh-r3h4-6jhm");
        assert_lodash_4_17_20(lodash, project, "GHSA-35jh-r3h4-6jhm", "CVE-2021-23337");
        assert_eq!(lodash.summary, "Command Injection in lodash");

        // Grype type `python`; fix versions sorted as versions; description from the CVE.
        let django = finding(&file, "GHSA-jh3w-4vvf-mjgr");
        assert_eq!(django.ecosystem.as_str(), "PyPI");
        assert_eq!(django.package_name, "Django");
        assert_eq!(django.severity, "MEDIUM");
        assert_eq!(django.fixed_versions, ["3.2.20", "4.1.10", "4.2.3"]);
        assert!(
            django.summary.starts_with("In Django 3.2 before 3.2.20"),
            "{}",
            django.summary
        );

        // Grype says Unknown and the related CVE has no label: the CVSS base score decides.
        let net = finding(&file, "GHSA-4374-p667-p6c8");
        assert_eq!(net.ecosystem.as_str(), "Go");
        assert_eq!(net.package_name, "golang.org/x/net");
        assert_eq!(net.severity, "HIGH");
        assert_eq!(net.fixed_versions, ["0.17.0"]);

        // A Java archive is named group:artifact from its purl.
        let log4j = finding(&file, "GHSA-jfh8-c2jp-5v3q");
        assert_eq!(log4j.ecosystem.as_str(), "Maven");
        assert_eq!(log4j.package_name, "org.apache.logging.log4j:log4j-core");
        assert_eq!(log4j.severity, "CRITICAL");
        assert_eq!(log4j.fixed_versions, ["2.3.1", "2.12.2", "2.15.0"]);

        for (f, a) in file.findings.iter().zip(&file.assessments) {
            assert_eq!(a.finding_id, f.id);
            assert_eq!(a.status, "ASSESSMENT_STATUS_AFFECTED");
            assert!(a.keep_existing);
        }
    }

    #[test]
    fn the_same_match_twice_is_one_finding_and_unknown_kinds_pass_through() {
        let m = serde_json::json!({
            "vulnerability": {"id": "CVE-2023-1", "severity": "Negligible",
                              "fix": {"versions": [], "state": "not-fixed"}},
            "artifact": {"name": "zlib", "version": "1.2.13", "type": "apk",
                         "purl": "pkg:apk/alpine/zlib@1.2.13-r0?arch=x86_64"}
        });
        let mut other_location = m.clone();
        other_location["vulnerability"]["fix"] =
            serde_json::json!({"versions": ["1.3.0"], "state": "fixed"});
        let text = serde_json::json!({"matches": [m, other_location]}).to_string();
        let file = convert(&text, ProjectId::new_random()).unwrap();
        assert_eq!(file.findings.len(), 1);
        assert_eq!(file.findings[0].ecosystem.as_str(), "Alpine");
        assert_eq!(file.findings[0].severity, "LOW");
        assert_eq!(file.findings[0].fixed_versions, ["1.3.0"]);

        let text = r#"{"matches": [{"vulnerability": {"id": "CVE-1"},
            "artifact": {"name": "python", "version": "3.9.2", "type": "binary",
                         "purl": "pkg:generic/python@3.9.2"}}]}"#;
        let file = convert(text, ProjectId::new_random()).unwrap();
        assert_eq!(
            file.findings[0].ecosystem.as_str(),
            "generic",
            "unknown kinds pass through"
        );
        assert_eq!(file.findings[0].severity, "UNKNOWN");

        let text = r#"{"matches": [{"vulnerability": {"id": "CVE-1"},
            "artifact": {"name": "thing", "version": "1"}}]}"#;
        assert_refused(convert, text, &["matches[0].artifact.type"]);
    }

    /// Malformed reports, and what the error must name.
    const MALFORMED: &[(&str, &[&str])] = &[
        (
            r#"{"matches": [{"vulnerability": {"id": "CVE-1", "fix": {"versions": "1.0"}},
            "artifact": {"name": "x", "version": "1", "type": "npm"}}]}"#,
            &["matches[0].vulnerability.fix.versions"],
        ),
        (
            r#"{"matches": [{"vulnerability": {"id": "CVE-1"}, "artifact": {"name": "x"}}]}"#,
            &["matches[0].artifact", "version"],
        ),
    ];

    #[test]
    fn malformed_reports_name_the_bad_field() {
        for (text, names) in MALFORMED {
            assert_refused(convert, text, names);
        }
    }
}
