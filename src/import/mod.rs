//! The catalog import (`remediator import FILE [--project ID]`): loads findings and assessments from one JSON
//! document. The format is detected from the content: the native catalog (README "Import
//! format", `native`) or a scanner report for one project: OSV-Scanner (`osv_scanner`),
//! Grype (`grype`) or CycloneDX with vulnerabilities (`cyclonedx`). Every format converts
//! into the native rows, written here in one transaction: a malformed file is rejected with the
//! path of the bad field and nothing is written; rows are upserted by id (deterministic ids for
//! scanner reports), so importing the same file twice changes nothing.

mod cyclonedx;
mod grype;
mod native;
mod osv_scanner;
mod purl;
mod record;
mod scanner;
mod tenancy;
#[cfg(test)]
mod test_support;
mod write;

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use native::{AssessmentIn, FindingIn, ImportFile, OrganizationIn, ProjectIn};
pub use scanner::{assessment_id, finding_id};
pub use write::{ImportSummary, import, import_document};

use crate::lifecycle::ProjectId;
use crate::repository_admission::RepositoryRules;

/// The document formats `remediator import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Native,
    OsvScanner,
    Grype,
    CycloneDx,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native catalog",
            Self::OsvScanner => "OSV-Scanner report",
            Self::Grype => "Grype report",
            Self::CycloneDx => "CycloneDX document",
        }
    }

    /// How path errors name the file, as each format's parser does (`invalid Grype file at`).
    fn file_label(self) -> &'static str {
        match self {
            Self::Native => "import file",
            Self::OsvScanner => "OSV-Scanner file",
            Self::Grype => "Grype file",
            Self::CycloneDx => "CycloneDX file",
        }
    }
}

const ACCEPTED_FORMATS: &str = "the native catalog (organizations/projects/findings/assessments, see examples/catalog.json), \
OSV-Scanner JSON (`osv-scanner --format json`: results[].packages[]), \
Grype JSON (`grype -o json`: matches[]), \
CycloneDX JSON 1.4 or later with vulnerabilities (bomFormat \"CycloneDX\")";

/// Tells the format from the content, never from the file name.
pub fn detect(text: &str) -> anyhow::Result<Format> {
    detect_value(&parse_json(text)?)
        .ok_or_else(|| anyhow!("unrecognised import file: expected one of: {ACCEPTED_FORMATS}"))
}

fn parse_json(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow!("the import file is not JSON: {e}"))
}

fn detect_value(value: &Value) -> Option<Format> {
    let object = value.as_object()?;
    let all_have = |key: &str, fields: &[&str]| {
        object
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|items| {
                items
                    .iter()
                    .all(|item| fields.iter().all(|f| item.get(f).is_some()))
            })
    };
    if object.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        return Some(Format::CycloneDx);
    }
    let grype_descriptor =
        value.pointer("/descriptor/name").and_then(Value::as_str) == Some("grype");
    if object.get("matches").is_some_and(Value::is_array)
        && (grype_descriptor || all_have("matches", &["vulnerability", "artifact"]))
    {
        return Some(Format::Grype);
    }
    if all_have("results", &["packages"]) {
        return Some(Format::OsvScanner);
    }
    if ["organizations", "projects", "findings", "assessments"]
        .iter()
        .any(|key| object.contains_key(*key))
    {
        return Some(Format::Native);
    }
    None
}

/// A parsed import: native rows, plus the project a scanner report is imported into.
#[derive(Debug)]
pub struct Document {
    pub format: Format,
    pub project: Option<ProjectId>,
    pub file: ImportFile,
}

/// Detects the format and converts the document into native rows, without touching the
/// database. A scanner report needs `project`; the native format must not have one. `rules`
/// are the repository URL and branch rules of the worker (`RepositoryRules::from_settings`).
pub fn parse_document(
    text: &str,
    project: Option<ProjectId>,
    rules: &RepositoryRules,
) -> anyhow::Result<Document> {
    let value = parse_json(text)?;
    let format = detect_value(&value)
        .ok_or_else(|| anyhow!("unrecognised import file: expected one of: {ACCEPTED_FORMATS}"))?;
    // Postgres text cannot hold NUL; named here with its path in the file as given, which the
    // checks on converted rows below could not do for a scanner report.
    if let Some(path) = nul_path(&value, &mut String::new()) {
        bail!(
            "invalid {} at `{path}`: contains the control character {}; remove it",
            format.file_label(),
            native::describe('\0')
        );
    }
    let file = match (format, project) {
        (Format::Native, None) => native::parse(text, rules)?,
        (Format::Native, Some(_)) => bail!(
            "--project is for scanner reports (OSV-Scanner, Grype, CycloneDX); \
             this is a native catalog file, which names the projects of its findings itself"
        ),
        (format, None) => bail!(
            "this is a {}: it does not say which project was scanned; \
             pass the project's id with --project <project uuid>",
            format.name()
        ),
        (Format::OsvScanner, Some(project)) => osv_scanner::convert(text, project)?,
        (Format::Grype, Some(project)) => grype::convert(text, project)?,
        (Format::CycloneDx, Some(project)) => cyclonedx::convert(text, project)?,
    };
    if format != Format::Native {
        native::validate(
            &file,
            &format!("record converted from the {}", format.name()),
            rules,
        )?;
    }
    Ok(Document {
        format,
        project,
        file,
    })
}

/// Parses a native catalog document (a scanner report is refused: it needs a project).
pub fn parse(text: &str, rules: &RepositoryRules) -> anyhow::Result<ImportFile> {
    Ok(parse_document(text, None, rules)?.file)
}

/// The path (as serde_path_to_error writes it) of the first string or key holding a NUL.
fn nul_path(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(|| path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_path(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            if key.contains('\0') {
                path.push_str(&key.replace('\0', "\\u0000"));
                return Some(path.clone());
            }
            path.push_str(key);
            let found = nul_path(item, path);
            path.truncate(len);
            found
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// Import files larger than this are refused before they are read (`--max-bytes` raises it):
/// the whole document is held in memory several times over while it is parsed.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Reads an import file, refusing one over `max_bytes` without reading it whole (the size is
/// checked first, and the read stops one byte past the limit in case the file grows or is a
/// pipe).
pub fn read_file(path: &Path, max_bytes: u64) -> anyhow::Result<String> {
    use std::io::Read;
    let too_big = |size: &str| {
        anyhow!(
            "{} is {size}, over the import size limit of {max_bytes} bytes; split the file, or \
             pass --max-bytes with a larger limit if this machine has the memory for it",
            path.display()
        )
    };
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let declared = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if declared > max_bytes {
        return Err(too_big(&format!("{declared} bytes")));
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big("larger than that"));
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Deserialises `text` as `T`, naming the path of the bad field in the error.
fn deserialize<T: DeserializeOwned>(text: &str, what: &str) -> anyhow::Result<T> {
    let deserializer = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        anyhow!("invalid {what} at `{path}`: {}", e.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_support::example;

    fn rules() -> RepositoryRules {
        RepositoryRules::default()
    }

    #[test]
    fn detects_the_format_from_the_content() {
        assert_eq!(detect(&example("catalog.json")).unwrap(), Format::Native);
        assert_eq!(
            detect(&example("osv-scanner.json")).unwrap(),
            Format::OsvScanner
        );
        assert_eq!(detect(&example("grype.json")).unwrap(), Format::Grype);
        assert_eq!(
            detect(&example("cyclonedx-vex.json")).unwrap(),
            Format::CycloneDx
        );
        // Empty reports still say what they are.
        assert_eq!(detect(r#"{"results": []}"#).unwrap(), Format::OsvScanner);
        assert_eq!(
            detect(r#"{"matches": [], "descriptor": {"name": "grype"}}"#).unwrap(),
            Format::Grype
        );
        assert_eq!(
            detect(r#"{"bomFormat": "CycloneDX", "specVersion": "1.6"}"#).unwrap(),
            Format::CycloneDx
        );
        assert_eq!(detect(r#"{"findings": []}"#).unwrap(), Format::Native);
    }

    #[test]
    fn unknown_documents_are_refused_with_the_accepted_formats() {
        for text in [
            r#"{"spdxVersion": "SPDX-2.3"}"#,
            "{}",
            "[]",
            r#"{"bomFormat": "SPDX"}"#,
            r#"{"results": [{"issues": []}]}"#,
        ] {
            let err = parse_document(text, Some(ProjectId::new_random()), &rules())
                .unwrap_err()
                .to_string();
            assert!(err.contains("unrecognised import file"), "{text}: {err}");
            for name in ["native catalog", "OSV-Scanner", "Grype", "CycloneDX"] {
                assert!(err.contains(name), "{text}: {err}");
            }
        }
        let err = detect("{ not json").unwrap_err().to_string();
        assert!(err.contains("not JSON") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn project_is_required_for_scanner_reports_and_refused_for_native_files() {
        let err = parse_document(
            &example("catalog.json"),
            Some(ProjectId::new_random()),
            &rules(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--project") && err.contains("native"), "{err}");

        for (name, format) in [
            ("osv-scanner.json", "OSV-Scanner report"),
            ("grype.json", "Grype report"),
            ("cyclonedx-vex.json", "CycloneDX document"),
        ] {
            let err = parse_document(&example(name), None, &rules())
                .unwrap_err()
                .to_string();
            assert!(err.contains(format) && err.contains("--project"), "{err}");
            // `parse` is the native entry point and says the same.
            assert!(parse(&example(name), &rules()).is_err());

            let project = ProjectId::new_random();
            let doc = parse_document(&example(name), Some(project), &rules()).unwrap();
            assert_eq!(doc.format.name(), format);
            assert_eq!(doc.project, Some(project));
            assert!(!doc.file.findings.is_empty());
            assert!(doc.file.findings.iter().all(|f| f.project_id == project));
            assert_eq!(doc.file.findings.len(), doc.file.assessments.len());
        }

        let doc = parse_document(&example("catalog.json"), None, &rules()).unwrap();
        assert_eq!(doc.format, Format::Native);
        assert_eq!(doc.file.findings.len(), 2);
    }
}
