//! What the import tests share: the example files under `examples/`, finding look-ups, and
//! the check that a malformed report is refused naming what is wrong.

use super::native::{FindingIn, ImportFile};
use super::scanner::finding_id;
use crate::lifecycle::ProjectId;

/// An example file of the repository's `examples/` folder.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("reading examples/{name}: {e}"))
}

/// The converted finding of vulnerability `id` (panics, showing them all, when none is).
pub fn finding<'a>(file: &'a ImportFile, id: &str) -> &'a FindingIn {
    file.findings
        .iter()
        .find(|f| f.vulnerability_id == id)
        .unwrap_or_else(|| panic!("no finding {id} in {:#?}", file.findings))
}

/// Checks the finding the Grype and the CycloneDX examples both report: lodash 4.17.20's
/// command injection, which the format names `id`, with the other advisory's id as its alias.
pub fn assert_lodash_4_17_20(f: &FindingIn, project: ProjectId, id: &str, alias: &str) {
    assert_eq!(f.id, finding_id(project, id, "lodash", "4.17.20"));
    assert_eq!(f.ecosystem.as_str(), "npm");
    assert_eq!(f.severity, "HIGH");
    assert_eq!(f.aliases, [alias]);
    assert_eq!(f.fixed_versions, ["4.17.21"]);
    assert_eq!(f.purl.as_deref(), Some("pkg:npm/lodash@4.17.20"));
}

/// A converter of one report format.
pub type Convert = fn(&str, ProjectId) -> anyhow::Result<ImportFile>;

/// `convert` refuses `text` with an error that contains every one of `names` (the bad
/// field's path, the value it had); panics showing the error otherwise.
pub fn assert_refused(convert: Convert, text: &str, names: &[&str]) {
    let err = convert(text, ProjectId::new_random())
        .unwrap_err()
        .to_string();
    assert!(names.iter().all(|name| err.contains(name)), "{err}");
}
