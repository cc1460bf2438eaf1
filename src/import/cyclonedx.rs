//! CycloneDX JSON (1.4 and later) with `vulnerabilities[]`: an SBOM with scan results, or a VEX.
//! Each `affects[]` entry names a component by `bom-ref` (a BOM-Link's fragment is the ref);
//! each affected component is one finding.
//!
//! The assessment comes from `analysis.state`: exploitable -> AFFECTED, in_triage ->
//! UNDER_INVESTIGATION, not_affected / false_positive -> NOT_AFFECTED, resolved /
//! resolved_with_pedigree -> FIXED, written as stated. Without an analysis the document is a
//! plain scan: AFFECTED, inserted only if the finding has no assessment yet.
//!
//! CycloneDX has no field for fixed versions, so they are read, best effort, from
//! `affects[].versions[]`: an exact `version` with status `unaffected`, the `>=` bounds of an
//! unaffected `vers:` range and the `<` bounds of an affected one; when those give nothing,
//! from version-looking words of `recommendation` ("Upgrade to 4.17.21"). Only versions above
//! the installed one are kept (when both parse as versions).

use std::collections::HashMap;

use crate::lifecycle::ProjectId;
use anyhow::bail;
use serde::Deserialize;

use super::native::ImportFile;
use super::purl::Purl;
use super::scanner::{Match, Rows, Severity, ecosystem_of_purl, first_line, normalize_ecosystem};
use crate::db::models::AssessmentStatus;
use crate::ecosystem::Ecosystem;
use crate::patch::bump::Version;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    spec_version: String,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    components: Vec<Component>,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    component: Option<Component>,
}

#[derive(Debug, Deserialize)]
struct Component {
    #[serde(rename = "bom-ref", default)]
    bom_ref: Option<String>,
    name: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Debug, Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    ratings: Vec<Rating>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    recommendation: Option<String>,
    #[serde(default)]
    affects: Vec<Affects>,
    #[serde(default)]
    analysis: Option<Analysis>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Rating {
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    score: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Affects {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    versions: Vec<AffectedVersion>,
}

#[derive(Debug, Deserialize)]
struct AffectedVersion {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    status: Option<VersionStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum VersionStatus {
    Affected,
    Unaffected,
    Unknown,
}

#[derive(Debug, Deserialize)]
struct Analysis {
    #[serde(default)]
    state: Option<State>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    Resolved,
    ResolvedWithPedigree,
    Exploitable,
    InTriage,
    FalsePositive,
    NotAffected,
}

impl State {
    fn status(self) -> AssessmentStatus {
        match self {
            Self::Exploitable => AssessmentStatus::Affected,
            Self::InTriage => AssessmentStatus::UnderInvestigation,
            Self::NotAffected | Self::FalsePositive => AssessmentStatus::NotAffected,
            Self::Resolved | Self::ResolvedWithPedigree => AssessmentStatus::Fixed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::ResolvedWithPedigree => "resolved_with_pedigree",
            Self::Exploitable => "exploitable",
            Self::InTriage => "in_triage",
            Self::FalsePositive => "false_positive",
            Self::NotAffected => "not_affected",
        }
    }
}

const WHAT: &str = "CycloneDX file";

pub fn convert(text: &str, project: ProjectId) -> anyhow::Result<ImportFile> {
    let bom: Bom = super::deserialize(text, WHAT)?;
    check_spec_version(&bom.spec_version)?;
    let mut components = HashMap::new();
    let roots = bom.metadata.iter().filter_map(|m| m.component.as_ref());
    for component in roots.chain(&bom.components) {
        index(component, &mut components);
    }
    let mut rows = Rows::new(project);
    for (i, v) in bom.vulnerabilities.iter().enumerate() {
        if v.id.trim().is_empty() {
            bail!("invalid {WHAT} at `vulnerabilities[{i}].id`: must not be empty");
        }
        for (j, affects) in v.affects.iter().enumerate() {
            let at = format!("vulnerabilities[{i}].affects[{j}]");
            // A BOM-Link (`urn:cdx:<serial>/<version>#<bom-ref>`) points at a ref by fragment.
            let reference = match affects.reference.split_once('#') {
                Some((urn, fragment)) if urn.starts_with("urn:cdx:") => fragment,
                _ => affects.reference.as_str(),
            };
            let Some(component) = components.get(reference) else {
                bail!(
                    "invalid {WHAT} at `{at}.ref`: no component has bom-ref {reference:?} in this \
                     document (a VEX that points into another BOM must be merged with it first)"
                );
            };
            rows.push(finding(v, affects, component, &at)?);
        }
    }
    Ok(rows.finish())
}

/// Vulnerabilities are part of CycloneDX from 1.4 on; later versions keep their shape.
fn check_spec_version(spec: &str) -> anyhow::Result<()> {
    let supported = spec
        .trim()
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)))
        .is_some_and(|(major, minor)| major == 1 && minor >= 4);
    if !supported {
        bail!(
            "invalid {WHAT} at `specVersion`: {spec:?} is not supported; CycloneDX 1.4 or later \
             (the versions with `vulnerabilities`) is needed"
        );
    }
    Ok(())
}

fn index<'a>(component: &'a Component, map: &mut HashMap<&'a str, &'a Component>) {
    if let Some(r) = component.bom_ref.as_deref() {
        map.entry(r).or_insert(component);
    }
    for child in &component.components {
        index(child, map);
    }
}

/// The component's version: its own, else its purl's, else the first affected version the
/// vulnerability lists for it.
fn installed_version(component: &Component, purl: &Purl, affects: &Affects) -> Option<String> {
    component
        .version
        .clone()
        .or_else(|| purl.version.clone())
        .or_else(|| {
            affects
                .versions
                .iter()
                .filter(|av| av.status == Some(VersionStatus::Affected))
                .find_map(|av| av.version.clone())
        })
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The assessment a CycloneDX analysis gives (status, justification, and whether an existing
/// triage is kept): none means affected until a person triages it.
fn triage(
    v: &Vulnerability,
    package_name: &str,
    version: &str,
) -> (AssessmentStatus, Option<String>, bool) {
    match v.analysis.as_ref().and_then(|a| a.state.map(|s| (a, s))) {
        Some((analysis, state)) => {
            let text = [
                analysis.justification.as_deref(),
                analysis.detail.as_deref(),
            ]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
            let text = if text.is_empty() {
                format!("CycloneDX analysis: {}", state.as_str())
            } else {
                text
            };
            (state.status(), Some(text), false)
        }
        None => (
            AssessmentStatus::Affected,
            Some(format!(
                "listed in a CycloneDX document without analysis: {package_name} {version}; \
                 affected until triaged"
            )),
            true,
        ),
    }
}

/// The highest rating: its label when it says something, else the score it comes with.
fn severity(v: &Vulnerability) -> Severity {
    v.ratings
        .iter()
        .map(|r| {
            match r
                .severity
                .as_deref()
                .map_or(Severity::Unknown, Severity::parse)
            {
                Severity::Unknown => r.score.map_or(Severity::Unknown, Severity::from_score),
                labelled => labelled,
            }
        })
        .max()
        .unwrap_or(Severity::Unknown)
}

fn finding(
    v: &Vulnerability,
    affects: &Affects,
    component: &Component,
    at: &str,
) -> anyhow::Result<Match> {
    let purl = component.purl.as_deref().and_then(Purl::parse);
    let Some(purl_ref) = purl.as_ref() else {
        bail!(
            "invalid {WHAT} at `{at}.ref`: component {:?} has no purl, so its ecosystem is unknown",
            component.name
        );
    };
    let ecosystem = ecosystem_of_purl(purl_ref)
        .map_or_else(|| normalize_ecosystem(&purl_ref.kind), str::to_owned);
    let version = installed_version(component, purl_ref, affects);
    let Some(version) = version else {
        bail!(
            "invalid {WHAT} at `{at}.ref`: component {:?} has no version",
            component.name
        );
    };
    let package_name = package_name(component, purl_ref, &ecosystem);
    let (status, justification, keep_existing) = triage(v, &package_name, &version);
    Ok(Match {
        vulnerability_id: v.id.trim().to_owned(),
        aliases: v.references.iter().map(|r| r.id.clone()).collect(),
        severity: severity(v),
        summary: [v.description.as_deref(), v.detail.as_deref()]
            .into_iter()
            .flatten()
            .map(first_line)
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
        fixed_versions: fixed_versions(v, affects, &version),
        package_name,
        ecosystem,
        purl: component.purl.clone(),
        installed_version: version,
        status,
        justification,
        keep_existing,
    })
}

/// The name as the ecosystem spells it: Maven's `group:artifact` (from the purl, which always
/// has the group), an npm scope or other group joined with `/`, else the component name.
fn package_name(component: &Component, purl: &Purl, ecosystem: &str) -> String {
    let name = component.name.trim();
    let maven = Ecosystem::parse(ecosystem) == Ecosystem::Maven;
    if maven && purl.namespace.is_some() {
        return purl.package_name();
    }
    match component.group.as_deref().map(str::trim) {
        Some(group) if !group.is_empty() && !name.starts_with(&format!("{group}/")) => {
            if maven {
                format!("{group}:{name}")
            } else {
                format!("{group}/{name}")
            }
        }
        _ => name.to_owned(),
    }
}

fn fixed_versions(v: &Vulnerability, affects: &Affects, installed: &str) -> Vec<String> {
    let mut found = Vec::new();
    for av in &affects.versions {
        match av.status {
            Some(VersionStatus::Unaffected) => {
                found.extend(av.version.clone());
                found.extend(range_bounds(av.range.as_deref(), ">="));
            }
            Some(VersionStatus::Affected) => found.extend(range_bounds(av.range.as_deref(), "<")),
            _ => {}
        }
    }
    if found.is_empty() {
        found.extend(versions_in_text(v.recommendation.as_deref().unwrap_or("")));
    }
    let installed = Version::parse(installed);
    found.retain(|candidate| match (&installed, Version::parse(candidate)) {
        (Some(installed), Some(candidate)) => candidate > *installed,
        _ => true,
    });
    found
}

/// The versions of a `vers:` range's constraints that use `comparator` exactly (`<` does not
/// match `<=`): `vers:npm/>=1.0.0|<1.2.5` with `<` gives `1.2.5`.
fn range_bounds(range: Option<&str>, comparator: &str) -> Vec<String> {
    let Some(range) = range else {
        return Vec::new();
    };
    let constraints = range
        .trim()
        .strip_prefix("vers:")
        .and_then(|rest| rest.split_once('/'))
        .map_or(range, |(_, constraints)| constraints);
    constraints
        .split('|')
        .map(str::trim)
        .filter_map(|c| c.strip_prefix(comparator))
        .filter(|v| !v.starts_with('='))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Words of free text that look like versions: a digit (or `v` and a digit) first, at least
/// one dot, only version characters.
fn versions_in_text(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"' | '\''))
        .map(|word| word.trim_end_matches(['.', ':', '!', '?']))
        .filter(|word| {
            let digits = word.strip_prefix(['v', 'V']).unwrap_or(word);
            digits.starts_with(|c: char| c.is_ascii_digit())
                && digits.contains('.')
                && digits
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | '~'))
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::native::{AssessmentIn, FindingIn};
    use crate::import::test_support::{assert_lodash_4_17_20, assert_refused, example};

    fn row<'a>(file: &'a ImportFile, id: &str, version: &str) -> (&'a FindingIn, &'a AssessmentIn) {
        let i = file
            .findings
            .iter()
            .position(|f| f.vulnerability_id == id && f.installed_version == version)
            .unwrap_or_else(|| panic!("no finding {id} {version} in {:#?}", file.findings));
        (&file.findings[i], &file.assessments[i])
    }

    #[test]
    fn converts_the_example_vex() {
        let project = ProjectId::new_random();
        let file = convert(&example("cyclonedx-vex.json"), project).unwrap();
        assert_eq!(file.findings.len(), 6, "{:#?}", file.findings);

        let (f, a) = row(&file, "CVE-2021-23337", "4.17.20");
        assert_lodash_4_17_20(f, project, "CVE-2021-23337", "GHSA-35jh-r3h4-6jhm");
        assert_eq!(a.status, "ASSESSMENT_STATUS_AFFECTED");
        assert!(!a.keep_existing, "a VEX statement is written as stated");
        assert!(
            a.justification
                .as_deref()
                .unwrap()
                .contains("user-controlled")
        );

        // not_affected, fixed version from the recommendation text.
        let (f, a) = row(&file, "CVE-2020-28500", "4.17.20");
        assert_eq!(a.status, "ASSESSMENT_STATUS_NOT_AFFECTED");
        assert_eq!(
            a.justification.as_deref(),
            Some("code_not_reachable: toNumber, trim and trimEnd never see user input")
        );
        assert_eq!(f.severity, "MEDIUM");
        assert_eq!(f.fixed_versions, ["4.17.21"]);

        let (f, a) = row(&file, "CVE-2023-32681", "2.28.0");
        assert_eq!(f.ecosystem.as_str(), "PyPI");
        assert_eq!(f.package_name, "requests");
        assert_eq!(f.fixed_versions, ["2.31.0"]);
        assert_eq!(a.status, "ASSESSMENT_STATUS_UNDER_INVESTIGATION");

        // resolved -> FIXED; severity from a bare score; fix from an unaffected version.
        let (f, a) = row(&file, "GO-2023-1571", "v0.5.0");
        assert_eq!(f.ecosystem.as_str(), "Go");
        assert_eq!(f.package_name, "golang.org/x/net");
        assert_eq!(f.severity, "HIGH");
        assert_eq!(f.fixed_versions, ["v0.7.0"]);
        assert_eq!(a.status, "ASSESSMENT_STATUS_FIXED");

        // One vulnerability affecting two components: two findings; no analysis.
        let (f, a) = row(&file, "CVE-2022-25883", "7.3.7");
        assert_eq!(f.fixed_versions, ["7.5.2"]);
        assert_eq!(a.status, "ASSESSMENT_STATUS_AFFECTED");
        assert!(
            a.keep_existing,
            "no analysis: a triaged status must survive"
        );
        let (f, _) = row(&file, "CVE-2022-25883", "5.7.1");
        assert_eq!(f.fixed_versions, ["5.7.2", "6.3.1", "7.5.2"]);
        assert_eq!(f.package_name, "semver");
    }

    #[test]
    fn names_groups_and_versions_best_effort() {
        assert_eq!(
            range_bounds(Some("vers:npm/>=1.0.0|<1.2.5|>=2.0.0|<=2.1.0"), "<"),
            ["1.2.5"]
        );
        assert_eq!(range_bounds(Some("vers:npm/>=1.2.5"), ">="), ["1.2.5"]);
        assert!(range_bounds(None, "<").is_empty());
        assert_eq!(
            versions_in_text("Upgrade lodash from 4.17.20 to 4.17.21 (or v5.0.0-beta.1)."),
            ["4.17.20", "4.17.21", "v5.0.0-beta.1"]
        );
        assert!(versions_in_text("See CVE-2021-23337 and section 3").is_empty());

        let component = |group: &str, name: &str, purl: &str| {
            let c = Component {
                bom_ref: None,
                name: name.to_owned(),
                group: Some(group.to_owned()),
                version: None,
                purl: Some(purl.to_owned()),
                components: Vec::new(),
            };
            let p = Purl::parse(purl).unwrap();
            let eco = ecosystem_of_purl(&p).unwrap();
            package_name(&c, &p, eco)
        };
        assert_eq!(
            component("@babel", "core", "pkg:npm/%40babel/core@7.0.0"),
            "@babel/core"
        );
        assert_eq!(
            component("org.yaml", "snakeyaml", "pkg:maven/org.yaml/snakeyaml@1.33"),
            "org.yaml:snakeyaml"
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let doc = |vulns: serde_json::Value, spec: &str| {
            serde_json::json!({
                "bomFormat": "CycloneDX", "specVersion": spec, "version": 1,
                "components": [{"bom-ref": "c1", "type": "library", "name": "lodash",
                                "version": "4.17.20", "purl": "pkg:npm/lodash@4.17.20"},
                               {"bom-ref": "c2", "type": "library", "name": "tool"}],
                "vulnerabilities": vulns
            })
            .to_string()
        };
        let text = doc(serde_json::json!([]), "1.3");
        assert_refused(convert, &text, &["specVersion", "1.4"]);

        let vulns = serde_json::json!([{"id": "CVE-1", "affects": [{"ref": "c1"}],
            "analysis": {"state": "maybe"}}]);
        assert_refused(
            convert,
            &doc(vulns, "1.5"),
            &["vulnerabilities[0].analysis.state"],
        );

        let vulns =
            serde_json::json!([{"id": "CVE-1", "affects": [{"ref": "c1"}, {"ref": "nope"}]}]);
        assert_refused(
            convert,
            &doc(vulns, "1.6"),
            &["vulnerabilities[0].affects[1].ref", "nope"],
        );

        let vulns = serde_json::json!([{"id": "CVE-1", "affects": [{"ref": "c2"}]}]);
        assert_refused(convert, &doc(vulns, "1.6"), &["has no purl"]);

        // A BOM-Link into this document resolves by its fragment.
        let vulns = serde_json::json!([{"id": "CVE-1",
            "affects": [{"ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#c1"}]}]);
        let file = convert(&doc(vulns, "1.6"), ProjectId::new_random()).unwrap();
        assert_eq!(file.findings[0].package_name, "lodash");
    }
}
