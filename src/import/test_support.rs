//! What the import tests share: the example files under `examples/` and finding look-ups.

use super::native::{FindingIn, ImportFile};

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
