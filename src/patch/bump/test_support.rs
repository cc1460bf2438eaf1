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

    /// Bumping `package` to `target` in `manifest` reports the move `from` → `to` and turns
    /// every `before` in the text into `after`, changing nothing else; returns the updated text.
    pub(super) fn assert_moves(
        &self,
        manifest: &str,
        package: &str,
        target: &str,
        (from, to): (&str, &str),
        (before, after): (&str, &str),
    ) -> String {
        assert!(
            manifest.contains(before),
            "{package}: `{before}` is not in the manifest"
        );
        let updated = manifest.replace(before, after);
        self.assert_bumps_to(manifest, package, target, (from, to), &updated);
        updated
    }

    /// Bumping `package` to `target` in `content` reports the move `from` → `to` and gives
    /// exactly `expected`.
    pub(super) fn assert_bumps_to(
        &self,
        content: &str,
        package: &str,
        target: &str,
        (from, to): (&str, &str),
        expected: &str,
    ) {
        let (updated, reported_from, reported_to) = self.bumped(content, package, target);
        assert_eq!(
            (reported_from.as_str(), reported_to.as_str()),
            (from, to),
            "{package}"
        );
        assert_eq!(updated, expected, "{package}");
    }

    /// For each `(content, package, target, expected)`: bumping `package` to `target` in
    /// `content` gives exactly `expected`.
    pub(super) fn assert_updates(&self, cases: &[(&str, &str, &str, &str)]) {
        for (content, package, target, expected) in cases {
            assert_eq!(
                self.bumped(content, package, target).0,
                *expected,
                "{package}"
            );
        }
    }

    /// For each `(package, target, current)`: `manifest` already satisfies `target`, with the
    /// constraint `current`.
    pub(super) fn assert_satisfied(&self, manifest: &str, cases: &[(&str, &str, &str)]) {
        for (package, target, current) in cases {
            assert_eq!(
                (self.0)(manifest, package, target),
                Ok(BumpOutcome::AlreadySatisfied {
                    current: (*current).to_owned()
                }),
                "{package}"
            );
        }
    }

    /// For each `(package, target, needle)`: bumping `package` to `target` in `manifest` is
    /// refused as unsupported, with a message that contains `needle`.
    pub(super) fn assert_refused(&self, manifest: &str, cases: &[(&str, &str, &str)]) {
        for (package, target, needle) in cases {
            let reason = self.reason(manifest, package, target);
            assert!(reason.contains(needle), "{package}: {reason}");
        }
    }

    /// Bumping `package` to `target` in `content` fails because the text does not parse as the
    /// manifest named `file_name`.
    pub(super) fn assert_parse_error(
        &self,
        file_name: &str,
        content: &str,
        package: &str,
        target: &str,
    ) {
        let outcome = (self.0)(content, package, target);
        assert!(
            matches!(&outcome, Err(BumpError::Parse { manifest, .. }) if *manifest == file_name),
            "{content:?}: {outcome:?}"
        );
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

    /// The two capped ranges of the issue that asked for widening, PyYAML `>=5.3,<5.4` and
    /// starlette `>=0.26.1,<0.27.0`, as `manifest` declares them: each fix opens the next
    /// window of the same width.
    pub(super) fn assert_widens_the_issue_ranges(&self, manifest: &str) {
        self.assert_widened(manifest, "pyyaml", "5.4", ">=5.3,<5.4", ">=5.4,<5.5");
        self.assert_widened(
            manifest,
            "starlette",
            "0.27.0",
            ">=0.26.1,<0.27.0",
            ">=0.27.0,<0.28.0",
        );
    }
}
