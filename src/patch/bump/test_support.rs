//! Test helpers shared by the manifest formats' tests: each format's `bump` is called through
//! them, so every format asserts its outcomes the same way.

use crate::patch::bump::{BumpError, BumpOutcome};

/// A format's bump: manifest text, package, target version.
pub(super) type Bump = fn(&str, &str, &str) -> Result<BumpOutcome, BumpError>;

/// One format's bump, with the assertions every format's tests make about it.
pub(super) struct Format(pub Bump);

impl Format {
    /// The updated text, `from` and `to` of a bump that must happen.
    pub(super) fn bumped(
        &self,
        content: &str,
        package: &str,
        target: &str,
    ) -> (String, String, String) {
        match (self.0)(content, package, target) {
            Ok(BumpOutcome::Bumped {
                updated, from, to, ..
            }) => (updated, from, to),
            other => panic!("expected a bump of {package}, got {other:?}"),
        }
    }

    /// The message of a bump that must be refused as unsupported.
    pub(super) fn reason(&self, content: &str, package: &str, target: &str) -> String {
        match (self.0)(content, package, target) {
            Err(error @ BumpError::Unsupported { .. }) => error.to_string(),
            other => panic!("expected Unsupported for {package}, got {other:?}"),
        }
    }

    /// For each `(package, target, before, after)`: bumping `package` to `target` in `manifest`
    /// changes the first `before` into `after` and nothing else.
    pub(super) fn assert_rewrites(&self, manifest: &str, cases: &[(&str, &str, &str, &str)]) {
        for (package, target, before, after) in cases {
            assert!(
                manifest.contains(before),
                "{package}: `{before}` is not in the manifest"
            );
            let (updated, _, _) = self.bumped(manifest, package, target);
            assert_eq!(updated, manifest.replacen(before, after, 1), "{package}");
        }
    }

    /// Each package in `packages` is reported as not declared in `manifest`.
    pub(super) fn assert_not_declared(&self, manifest: &str, packages: &[&str], target: &str) {
        for package in packages {
            assert_eq!(
                (self.0)(manifest, package, target),
                Ok(BumpOutcome::NotDeclared),
                "{package}"
            );
        }
    }

    /// Bumping `package` to `target` in `manifest` widens the range `from` (its first occurrence
    /// in the text) to `to`, and the outcome reports both and that it widened.
    pub(super) fn assert_widened(
        &self,
        manifest: &str,
        package: &str,
        target: &str,
        from: &str,
        to: &str,
    ) {
        assert_eq!(
            (self.0)(manifest, package, target),
            Ok(BumpOutcome::Bumped {
                updated: manifest.replacen(from, to, 1),
                from: from.to_owned(),
                to: to.to_owned(),
                widened: true,
            }),
            "{package}"
        );
    }
}
