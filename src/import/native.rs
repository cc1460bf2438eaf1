//! The native catalog format (README "Import format"): organisations, projects, findings and
//! assessments by id. It is also what every scanner format converts into, so these rows are the
//! single input of the write path.

use anyhow::bail;
use serde::Deserialize;

use crate::db::models::AssessmentStatus;
use crate::ecosystem::Ecosystem;
use crate::lifecycle::{AssessmentId, FindingId, OrganizationId, ProjectId, ProjectVersionId};
use crate::repository_admission::{RepositoryRules, check_project_repository};
use crate::verify::CommandOverride;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    #[serde(default)]
    pub organizations: Vec<OrganizationIn>,
    #[serde(default)]
    pub projects: Vec<ProjectIn>,
    #[serde(default)]
    pub findings: Vec<FindingIn>,
    #[serde(default)]
    pub assessments: Vec<AssessmentIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationIn {
    pub id: OrganizationId,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectIn {
    pub id: ProjectId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub repository_url: String,
    #[serde(default = "default_branch")]
    pub default_branch: String,
    /// The project's test commands, the operator's choice over the repository's
    /// `.remediator.toml`, the fleet's `[verify.commands]` and the conventions.
    #[serde(default)]
    pub test: Option<ProjectTestIn>,
}

/// `projects[].test`: the words `.remediator.toml`'s `[test]` takes, read by the same code
/// (`verify::discover`): `command` required, `install` optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectTestIn {
    #[serde(default)]
    pub install: String,
    pub command: String,
}

impl ProjectTestIn {
    /// The commands as the test step reads them.
    pub fn commands(&self) -> CommandOverride {
        CommandOverride {
            install: self.install.clone(),
            command: self.command.clone(),
        }
    }
}

fn default_branch() -> String {
    "main".to_owned()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingIn {
    pub id: FindingId,
    pub project_id: ProjectId,
    #[serde(default)]
    pub project_version_id: Option<ProjectVersionId>,
    pub vulnerability_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default = "unknown_severity")]
    pub severity: String,
    #[serde(default)]
    pub summary: String,
    pub package_name: String,
    /// Parsed on reading: an empty or multi-line name is refused.
    pub ecosystem: Ecosystem,
    #[serde(default)]
    pub purl: Option<String>,
    pub installed_version: String,
    #[serde(default)]
    pub fixed_versions: Vec<String>,
}

fn unknown_severity() -> String {
    "UNKNOWN".to_owned()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentIn {
    pub id: AssessmentId,
    pub finding_id: FindingId,
    pub status: String,
    #[serde(default)]
    pub justification: Option<String>,
    /// Insert only, never overwrite: set for scanner matches that carry no VEX statement, so a
    /// re-scan does not undo a status someone already triaged. Not part of the file format.
    #[serde(skip)]
    pub keep_existing: bool,
}

/// Parses and checks a native document.
pub fn parse(text: &str, rules: &RepositoryRules) -> anyhow::Result<ImportFile> {
    let file: ImportFile = super::deserialize(text, "import file")?;
    validate(&file, "import file", rules)?;
    Ok(file)
}

/// Checks what the types cannot say. Also run on converted scanner output as a safety net,
/// with `what` naming the converted records (their paths are those of the native rows).
///
/// Repository URLs and default branches go through the check the intake and the worker use
/// (`repository_admission::check_project_repository`), so nothing is stored that the worker would
/// refuse for its form (credentials in a URL, option injection, a refused scheme or address).
pub(super) fn validate(
    file: &ImportFile,
    what: &str,
    rules: &RepositoryRules,
) -> anyhow::Result<()> {
    for (i, o) in file.organizations.iter().enumerate() {
        single_line(what, &format!("organizations[{i}].name"), &o.name)?;
    }
    for (i, p) in file.projects.iter().enumerate() {
        single_line(what, &format!("projects[{i}].name"), &p.name)?;
        if p.repository_url.trim().is_empty() {
            bail!("invalid {what} at `projects[{i}].repository_url`: must not be empty");
        }
        if p.default_branch.trim().is_empty() {
            bail!("invalid {what} at `projects[{i}].default_branch`: must not be empty");
        }
        if let Err(refused) = check_project_repository(&p.repository_url, &p.default_branch, rules)
        {
            bail!(
                "invalid {what} at `projects[{i}].{}`: {refused}",
                refused.field()
            );
        }
        if let Some(test) = &p.test {
            test_commands(what, &format!("projects[{i}].test"), test)?;
        }
    }
    for (i, f) in file.findings.iter().enumerate() {
        for (field, value) in [
            ("vulnerability_id", &f.vulnerability_id),
            ("package_name", &f.package_name),
            ("installed_version", &f.installed_version),
        ] {
            if value.trim().is_empty() {
                bail!("invalid {what} at `findings[{i}].{field}`: must not be empty");
            }
            single_line(what, &format!("findings[{i}].{field}"), value)?;
        }
        single_line(what, &format!("findings[{i}].severity"), &f.severity)?;
        if let Some(purl) = &f.purl {
            single_line(what, &format!("findings[{i}].purl"), purl)?;
        }
        for (field, values) in [
            ("aliases", &f.aliases),
            ("fixed_versions", &f.fixed_versions),
        ] {
            for (j, value) in values.iter().enumerate() {
                single_line(what, &format!("findings[{i}].{field}[{j}]"), value)?;
            }
        }
        free_text(what, &format!("findings[{i}].summary"), &f.summary)?;
    }
    for (i, a) in file.assessments.iter().enumerate() {
        if AssessmentStatus::parse(&a.status).is_none() {
            let allowed: Vec<_> = AssessmentStatus::ALL.iter().map(|s| s.as_str()).collect();
            bail!(
                "invalid {what} at `assessments[{i}].status`: unknown status {:?}; expected one of {}",
                a.status,
                allowed.join(", ")
            );
        }
        if let Some(justification) = &a.justification {
            free_text(
                what,
                &format!("assessments[{i}].justification"),
                justification,
            )?;
        }
    }
    Ok(())
}

/// One line each (they are shown in the report and the pull request), and commands the test
/// step can split into words: refused here rather than when a job runs.
fn test_commands(what: &str, path: &str, test: &ProjectTestIn) -> anyhow::Result<()> {
    single_line(what, &format!("{path}.install"), &test.install)?;
    single_line(what, &format!("{path}.command"), &test.command)?;
    if let Err(unusable) = test.commands().commands() {
        bail!(
            "invalid {what} at `{path}.{}`: {}",
            unusable.field.as_str(),
            unusable.why
        );
    }
    Ok(())
}

/// Names, ids and versions: no control character at all (they end up in branch names, PR
/// titles, log lines and headers).
fn single_line(what: &str, path: &str, value: &str) -> anyhow::Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!(
            "invalid {what} at `{path}`: contains the control character {}; remove it",
            describe(c)
        );
    }
    Ok(())
}

/// Summaries and justifications may span lines; other control characters are refused.
fn free_text(what: &str, path: &str, value: &str) -> anyhow::Result<()> {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        bail!(
            "invalid {what} at `{path}`: contains the control character {}; remove it",
            describe(c)
        );
    }
    Ok(())
}

/// A control character as a message can show it: `U+0000 (NUL)`.
pub(super) fn describe(c: char) -> String {
    let code = u32::from(c);
    if c == '\0' {
        format!("U+{code:04X} (NUL)")
    } else {
        format!("U+{code:04X}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A native file of four projects, the last with `test` (when not null).
    fn with_test(test: Value) -> String {
        let org = OrganizationId::new_random();
        let projects: Vec<Value> = (0..4)
            .map(|i| {
                json!({"id": ProjectId::new_random(), "organization_id": org,
                    "name": format!("web-{i}"),
                    "repository_url": "https://github.com/acme/web.git"})
            })
            .collect();
        let mut file = json!({"organizations": [{"id": org, "name": "Acme"}],
            "projects": projects});
        if !test.is_null() {
            file["projects"][3]["test"] = test;
        }
        file.to_string()
    }

    fn parsed(test: Value) -> anyhow::Result<ImportFile> {
        parse(&with_test(test), &RepositoryRules::default())
    }

    fn refused(test: Value) -> String {
        parsed(test).unwrap_err().to_string()
    }

    #[test]
    fn a_project_may_name_its_test_commands() {
        let file =
            parsed(json!({"install": "npm ci", "command": "npm test -- --grep 'a b'"})).unwrap();
        let test = file.projects[3].test.as_ref().unwrap();
        assert_eq!(test.install, "npm ci");
        let (install, command) = test.commands().commands().unwrap();
        assert_eq!(install.len(), 1);
        assert_eq!(command.args, ["test", "--", "--grep", "a b"]);
        // `install` is optional; a project without `test` has none.
        let file = parsed(json!({"command": "make check"})).unwrap();
        assert_eq!(
            file.projects[3].test,
            Some(ProjectTestIn {
                install: String::new(),
                command: "make check".to_owned()
            })
        );
        assert_eq!(file.projects[0].test, None);
        assert_eq!(parsed(Value::Null).unwrap().projects[3].test, None);
    }

    #[test]
    fn unusable_test_commands_are_refused_naming_the_field() {
        for (test, path, why) in [
            (json!({"command": "  "}), "command", "the command is empty"),
            (json!({"command": ""}), "command", "the command is empty"),
            (
                json!({"command": "npm test -- 'open"}),
                "command",
                "a single quote is not closed",
            ),
            (
                json!({"install": "npm ci \"", "command": "npm test"}),
                "install",
                "a double quote is not closed",
            ),
            (
                json!({"install": "npm ci \\", "command": "npm test"}),
                "install",
                "ends with a backslash",
            ),
            (
                json!({"command": "npm test\nrm -rf ~"}),
                "command",
                "control character U+000A",
            ),
        ] {
            let err = refused(test.clone());
            assert!(
                err.starts_with(&format!(
                    "invalid import file at `projects[3].test.{path}`: "
                )),
                "{test}: {err}"
            );
            assert!(err.contains(why), "{test}: {err}");
        }
    }

    #[test]
    fn a_test_object_has_a_command_and_nothing_unknown() {
        let missing = refused(json!({"install": "npm ci"}));
        assert!(
            missing.contains("projects[3].test") && missing.contains("missing field `command`"),
            "{missing}"
        );
        let unknown = refused(json!({"command": "npm test", "env": {"CI": "1"}}));
        assert!(
            unknown.contains("projects[3].test") && unknown.contains("unknown field `env`"),
            "{unknown}"
        );
        let not_text = refused(json!({"command": ["npm", "test"]}));
        assert!(not_text.contains("projects[3].test.command"), "{not_text}");
    }
}
