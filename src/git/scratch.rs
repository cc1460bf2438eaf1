//! The scratch directory a clone lives in for one job, removed when the guard drops, on every
//! path (success, error, or panic unwinding).

use std::path::Path;

use super::GitError;

/// A fresh directory under a configurable parent (e.g. a dedicated volume for clones); the
/// directory and everything in it are removed when this value is dropped.
#[derive(Debug)]
pub struct ScratchDir {
    // An Option so that `drop` can take the TempDir and close it, which reports removal errors
    // instead of swallowing them.
    dir: Option<tempfile::TempDir>,
}

impl ScratchDir {
    /// Creates `parent` if needed, then a new uniquely named directory inside it.
    pub fn new_in(parent: &Path) -> Result<ScratchDir, GitError> {
        std::fs::create_dir_all(parent).map_err(|e| {
            GitError::Transient(format!(
                "could not create the scratch parent directory {}: {e}",
                parent.display()
            ))
        })?;
        let dir = tempfile::Builder::new()
            .prefix("remediator-")
            .tempdir_in(parent)
            .map_err(|e| {
                GitError::Transient(format!(
                    "could not create a scratch directory under {}: {e}",
                    parent.display()
                ))
            })?;
        Ok(ScratchDir { dir: Some(dir) })
    }

    /// The directory's path; valid until this guard is dropped.
    pub fn path(&self) -> &Path {
        match &self.dir {
            Some(dir) => dir.path(),
            // Only `drop` takes the TempDir, so a live guard always holds one.
            None => Path::new(""),
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                tracing::warn!(path = %path.display(), error = %e, "could not remove scratch directory");
            }
        }
    }
}
