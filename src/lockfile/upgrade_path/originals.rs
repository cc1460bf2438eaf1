//! The project's files as they were before an upgrade path touched them: to tell what it
//! changed, and to put them back when the path does not work out.

use std::path::Path;

use crate::lockfile::{LockError, Writing};
use crate::patch::bump::{BumpOutcome, ManifestKind, bump_manifest};

/// Each kept file's path and its content before the upgrade path.
#[derive(Default)]
pub struct Originals(Vec<(String, String)>);

impl Originals {
    /// The file's content now, kept as it was the first time.
    pub fn keep(&mut self, root: &Path, path: &str) -> Result<String, LockError> {
        let text = crate::lockfile::read(root, path)?;
        if !self.0.iter().any(|(p, _)| p == path) {
            self.0.push((path.to_owned(), text.clone()));
        }
        Ok(text)
    }

    /// Writes every kept file back as it was.
    pub fn restore(&self, root: &Path) -> Result<(), LockError> {
        for (path, text) in &self.0 {
            std::fs::write(root.join(path), text)
                .map_err(|e| LockError::write(Writing::Restoring, path, &e))?;
        }
        Ok(())
    }

    /// Each kept file whose content the path changed, with its new content.
    pub fn changed(&self, root: &Path) -> Vec<(String, String)> {
        let mut changed: Vec<(String, String)> = self
            .0
            .iter()
            .filter_map(|(path, before)| {
                let after = crate::lockfile::repo_file::read(root, path).ok()?;
                (after != *before).then(|| (path.clone(), after))
            })
            .collect();
        // Manifests first, as a direct change lists them.
        changed.sort_by_key(|(path, _)| ManifestKind::detect(path).is_none());
        changed
    }

    /// Raises `parent` to `to` in `manifest` (range style kept, the manifest kept as it was)
    /// when what it declares does not admit `to`, per `admits`; `Ok(false)` when the manifest
    /// needs no edit, `Err` why it cannot be bumped.
    pub fn bump_declared(
        &mut self,
        root: &Path,
        manifest: &str,
        (parent, to): (&str, &str),
        admits: fn(&str, &str) -> Option<bool>,
    ) -> Result<bool, String> {
        let kind =
            ManifestKind::detect(manifest).ok_or_else(|| format!("{manifest} is unknown"))?;
        let text = self.keep(root, manifest).map_err(|e| e.to_string())?;
        match bump_manifest(kind, &text, parent, to) {
            Ok(BumpOutcome::Bumped { updated, from, .. }) if admits(&from, to) != Some(true) => {
                std::fs::write(root.join(manifest), updated)
                    .map_err(|e| format!("writing {manifest}: {e}"))?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(error) => Err(error.to_string()),
        }
    }
}
