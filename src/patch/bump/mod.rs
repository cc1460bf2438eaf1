//! Deterministic dependency version bump: when the fix for a vulnerability is a newer version of
//! a direct dependency, rewrite that dependency's version in its manifest ourselves, with no
//! LLM, touching nothing else in the file.
//!
//! Each manifest format lives in its own file; adding one (pyproject.toml, go.mod, pom.xml) is
//! a new file, a new [`ManifestKind`] variant and its arms in `detect`, `ecosystem_manifests`
//! and `bump_manifest`.

mod cargo_toml;
mod constraint;
mod json_span;
mod package_json;
mod requirements_txt;
mod version;

pub use version::{Version, choose_target_version};

/// A manifest format the bump understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// Rust: `Cargo.toml`.
    CargoToml,
    /// npm and compatible tools: `package.json`.
    PackageJson,
    /// pip: `requirements*.txt`, or any `.txt` inside a `requirements/` directory.
    RequirementsTxt,
}

impl ManifestKind {
    /// Recognises a manifest by its repository-relative path (`/`-separated).
    pub fn detect(path: &str) -> Option<Self> {
        let mut components = path.rsplit('/');
        let file_name = components.next()?;
        let parent = components.next();
        match file_name {
            "Cargo.toml" => Some(Self::CargoToml),
            "package.json" => Some(Self::PackageJson),
            _ => {
                let lowered = file_name.to_ascii_lowercase();
                let is_txt = lowered.ends_with(".txt");
                let named = lowered.starts_with("requirements")
                    || lowered.ends_with("-requirements.txt")
                    || lowered.ends_with("_requirements.txt");
                let in_dir = parent.is_some_and(|dir| dir.eq_ignore_ascii_case("requirements"));
                (is_txt && (named || in_dir)).then_some(Self::RequirementsTxt)
            }
        }
    }

    /// The conventional file name, for messages.
    pub fn file_name(&self) -> &'static str {
        match self {
            Self::CargoToml => "Cargo.toml",
            Self::PackageJson => "package.json",
            Self::RequirementsTxt => "requirements.txt",
        }
    }
}

/// The manifest formats that declare packages of an ecosystem, named as OSV names ecosystems
/// (`crates.io`, `npm`, `PyPI`; matched case-insensitively, `cargo` accepted too). Empty for an
/// ecosystem the bump does not handle.
pub fn ecosystem_manifests(ecosystem: &str) -> &'static [ManifestKind] {
    let ecosystem = ecosystem.trim().to_ascii_lowercase();
    match ecosystem.as_str() {
        "crates.io" | "cargo" => &[ManifestKind::CargoToml],
        "npm" => &[ManifestKind::PackageJson],
        "pypi" => &[ManifestKind::RequirementsTxt],
        _ => &[],
    }
}

/// What a bump did to one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BumpOutcome {
    /// The dependency was rewritten. `from` and `to` are the constraints as written in the
    /// manifest (e.g. `^1.2.3` and `^1.4.0`); where the package is declared more than once
    /// (several tables or sections), the first rewritten declaration.
    Bumped {
        updated: String,
        from: String,
        to: String,
    },
    /// Every declaration already admits only versions >= the target; `current` is the first.
    AlreadySatisfied { current: String },
    /// The file declares no direct registry dependency on the package.
    NotDeclared,
}

/// Why a manifest could not be bumped. Messages say what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BumpError {
    /// The manifest itself does not parse.
    #[error("cannot parse {manifest}: {detail}")]
    Parse {
        manifest: &'static str,
        detail: String,
    },
    /// The target version is not a plain version string.
    #[error(
        "target version `{0}` is not a plain version (digits, letters and `.-+_!` only, starting with a digit)"
    )]
    InvalidTarget(String),
    /// The package is declared in a way the bump must not or cannot rewrite.
    #[error("cannot bump `{package}` in {manifest}: {reason}")]
    Unsupported {
        manifest: &'static str,
        package: String,
        reason: String,
    },
}

/// Rewrites the version of `package`, a direct dependency declared in `content`, to require
/// `target_version`, keeping the user's range style and every other byte of the file.
pub fn bump_manifest(
    kind: ManifestKind,
    content: &str,
    package: &str,
    target_version: &str,
) -> Result<BumpOutcome, BumpError> {
    let valid_chars = target_version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | '!'));
    let starts_with_digit = target_version.starts_with(|c: char| c.is_ascii_digit());
    if !valid_chars || !starts_with_digit || Version::parse(target_version).is_none() {
        return Err(BumpError::InvalidTarget(target_version.to_owned()));
    }
    match kind {
        ManifestKind::CargoToml => cargo_toml::bump(content, package, target_version),
        ManifestKind::PackageJson => package_json::bump(content, package, target_version),
        ManifestKind::RequirementsTxt => requirements_txt::bump(content, package, target_version),
    }
}

/// One declaration of the package found in a manifest, before rewriting.
#[derive(Debug, Clone)]
struct Declaration {
    /// Byte range of the constraint text (without quotes) in the manifest.
    span: std::ops::Range<usize>,
    /// Where it was found, for messages (e.g. `[dev-dependencies]`).
    location: String,
}

/// Applies a rewrite to every declaration and assembles the outcome. `rewrite` returns the new
/// constraint, or `None` when this declaration is already satisfied.
fn apply_rewrites(
    kind: ManifestKind,
    content: &str,
    package: &str,
    declarations: &[Declaration],
    rewrite: impl Fn(&str) -> Result<Option<String>, String>,
) -> Result<BumpOutcome, BumpError> {
    let Some(first) = declarations.first() else {
        return Ok(BumpOutcome::NotDeclared);
    };
    let mut edits = Vec::new();
    for declaration in declarations {
        let current = &content[declaration.span.clone()];
        let new = rewrite(current).map_err(|reason| BumpError::Unsupported {
            manifest: kind.file_name(),
            package: package.to_owned(),
            reason: format!(
                "the constraint `{current}` in {} is not bumped automatically: {reason}",
                declaration.location
            ),
        })?;
        if let Some(new) = new {
            edits.push((declaration.span.clone(), current.to_owned(), new));
        }
    }
    let Some((_, from, to)) = edits.first().cloned() else {
        return Ok(BumpOutcome::AlreadySatisfied {
            current: content[first.span.clone()].to_owned(),
        });
    };
    let mut updated = content.to_owned();
    edits.sort_by_key(|(span, _, _)| std::cmp::Reverse(span.start));
    for (span, _, new) in edits {
        updated.replace_range(span, &new);
    }
    Ok(BumpOutcome::Bumped { updated, from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_manifests_by_file_name() {
        assert_eq!(
            ManifestKind::detect("Cargo.toml"),
            Some(ManifestKind::CargoToml)
        );
        assert_eq!(
            ManifestKind::detect("crates/core/Cargo.toml"),
            Some(ManifestKind::CargoToml)
        );
        assert_eq!(
            ManifestKind::detect("web/package.json"),
            Some(ManifestKind::PackageJson)
        );
        for path in [
            "requirements.txt",
            "requirements-dev.txt",
            "requirements_test.txt",
            "services/api/requirements.txt",
            "requirements/base.txt",
            "dev-requirements.txt",
        ] {
            assert_eq!(
                ManifestKind::detect(path),
                Some(ManifestKind::RequirementsTxt),
                "{path}"
            );
        }
        for path in [
            "cargo.toml",
            "Cargo.lock",
            "package-lock.json",
            "requirements.in",
            "docs/requirements.md",
            "notes.txt",
            "",
        ] {
            assert_eq!(ManifestKind::detect(path), None, "{path}");
        }
    }

    #[test]
    fn ecosystems_map_to_their_manifests() {
        assert_eq!(ecosystem_manifests("crates.io"), &[ManifestKind::CargoToml]);
        assert_eq!(ecosystem_manifests("cargo"), &[ManifestKind::CargoToml]);
        assert_eq!(ecosystem_manifests("npm"), &[ManifestKind::PackageJson]);
        assert_eq!(
            ecosystem_manifests("PyPI"),
            &[ManifestKind::RequirementsTxt]
        );
        assert_eq!(
            ecosystem_manifests("pypi"),
            &[ManifestKind::RequirementsTxt]
        );
        assert!(ecosystem_manifests("Maven").is_empty());
        assert!(ecosystem_manifests("Go").is_empty());
    }

    #[test]
    fn a_bumped_manifest_passes_the_default_patch_policy() {
        use crate::patch::{FileEdit, PatchPolicy, PolicySettings};

        let original = "[package]\nname = \"app\"\n\n[dependencies]\nh2 = \"0.3.15\" # HTTP/2\n";
        let Ok(BumpOutcome::Bumped { updated, .. }) =
            bump_manifest(ManifestKind::CargoToml, original, "h2", "0.3.24")
        else {
            panic!("h2 should be bumped");
        };
        let policy = PatchPolicy::new(&PolicySettings::default()).expect("default settings");
        let edit = FileEdit::modify("Cargo.toml", original, updated);
        assert_eq!(policy.check(&[edit]), Ok(()));
    }

    #[test]
    fn dispatches_to_each_format() {
        let cases = [
            (
                ManifestKind::CargoToml,
                "[dependencies]\nlog = \"0.4.1\"\n",
                "log = \"0.4.20\"",
            ),
            (
                ManifestKind::PackageJson,
                "{\"dependencies\": {\"log\": \"^0.4.1\"}}",
                "\"^0.4.20\"",
            ),
            (
                ManifestKind::RequirementsTxt,
                "log==0.4.1\n",
                "log==0.4.20\n",
            ),
        ];
        for (kind, content, expected) in cases {
            match bump_manifest(kind, content, "log", "0.4.20") {
                Ok(BumpOutcome::Bumped { updated, .. }) => {
                    assert!(updated.contains(expected), "{kind:?}: {updated}");
                }
                other => panic!("{kind:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn odd_target_versions_are_refused_before_touching_the_file() {
        for target in ["", "latest", "1.2.3\"", "1.2 || 2", "^1.4.0", "1.4.0\n"] {
            assert_eq!(
                bump_manifest(ManifestKind::CargoToml, "", "serde", target),
                Err(BumpError::InvalidTarget(target.to_owned())),
                "{target:?}"
            );
        }
    }
}
