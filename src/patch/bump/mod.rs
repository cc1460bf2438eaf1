//! Deterministic dependency version bump: when the fix for a vulnerability is a newer version of
//! a direct dependency, rewrite that dependency's version in its manifest ourselves, with no
//! LLM, touching nothing else in the file.
//!
//! Each manifest format lives in its own file; adding one (e.g. `build.gradle`) is a new file,
//! a new [`ManifestKind`] variant and its arms in `detect`, `ecosystem_manifests`, `file_name`
//! and `bump_manifest`.

mod cargo_toml;
pub use cargo_toml::range_admits as cargo_range_admits;
mod constraint;
mod go_mod;
mod json_span;
mod package_json;
pub use package_json::range_admits as npm_range_admits;
mod pom_xml;
mod pyproject_toml;
mod requirements_txt;
pub use requirements_txt::{pep503_name, specifier_admits as pep440_specifier_admits};
#[cfg(test)]
mod test_support;
mod toml_span;
mod version;
mod widen;
mod xml_scan;

use crate::ecosystem::Ecosystem;
use constraint::Rewrite;
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
    /// Python projects: `pyproject.toml` (PEP 621, PEP 735 and Poetry tables).
    PyprojectToml,
    /// Go modules: `go.mod`.
    GoMod,
    /// Maven: `pom.xml`.
    PomXml,
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
            "pyproject.toml" => Some(Self::PyprojectToml),
            "go.mod" => Some(Self::GoMod),
            "pom.xml" => Some(Self::PomXml),
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

    /// The error for a manifest of this kind that does not parse.
    fn parse_error(self, detail: impl Into<String>) -> BumpError {
        BumpError::Parse {
            manifest: self.file_name(),
            detail: detail.into(),
        }
    }

    /// The error for a declaration of `package` that this manifest kind must not or cannot
    /// rewrite; `reason` says why, and what to do instead.
    fn unsupported(self, package: &str, reason: impl Into<String>) -> BumpError {
        BumpError::Unsupported {
            manifest: self.file_name(),
            package: package.to_owned(),
            reason: reason.into(),
        }
    }

    /// The conventional file name, for messages.
    pub fn file_name(&self) -> &'static str {
        match self {
            Self::CargoToml => "Cargo.toml",
            Self::PackageJson => "package.json",
            Self::RequirementsTxt => "requirements.txt",
            Self::PyprojectToml => "pyproject.toml",
            Self::GoMod => "go.mod",
            Self::PomXml => "pom.xml",
        }
    }
}

/// The manifest formats that declare packages of an ecosystem. Empty for an ecosystem the
/// bump does not handle.
pub fn ecosystem_manifests(ecosystem: &Ecosystem) -> &'static [ManifestKind] {
    match ecosystem {
        Ecosystem::CratesIo => &[ManifestKind::CargoToml],
        Ecosystem::Npm => &[ManifestKind::PackageJson],
        Ecosystem::PyPi => &[ManifestKind::RequirementsTxt, ManifestKind::PyprojectToml],
        Ecosystem::Go => &[ManifestKind::GoMod],
        Ecosystem::Maven => &[ManifestKind::PomXml],
        Ecosystem::Other(_) => &[],
    }
}

/// What a bump did to one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BumpOutcome {
    /// The dependency was rewritten. `from` and `to` are the constraints as written in the
    /// manifest (e.g. `^1.2.3` and `^1.4.0`); where the package is declared more than once
    /// (several tables or sections), the first widened declaration, else the first rewritten.
    /// `widened` says the range's upper bound excluded the target, so the range was moved to
    /// one of the same shape that starts at it (`>=5.3,<5.4` to `>=5.4,<5.5`).
    Bumped {
        updated: String,
        from: String,
        to: String,
        widened: bool,
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
/// A Go-style `v` before the version (`v1.4.0`) is accepted and dropped; `go.mod` writes its
/// own `v`.
pub fn bump_manifest(
    kind: ManifestKind,
    content: &str,
    package: &str,
    target_version: &str,
) -> Result<BumpOutcome, BumpError> {
    let target_version = target_version
        .strip_prefix(['v', 'V'])
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(target_version);
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
        ManifestKind::PyprojectToml => pyproject_toml::bump(content, package, target_version),
        ManifestKind::GoMod => go_mod::bump(content, package, target_version),
        ManifestKind::PomXml => pom_xml::bump(content, package, target_version),
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

/// Applies a rewrite to every declaration and assembles the outcome. `rewrite` is given the
/// declaration and its current text, and says what becomes of it.
fn apply_rewrites(
    kind: ManifestKind,
    content: &str,
    package: &str,
    declarations: &[Declaration],
    rewrite: impl Fn(&Declaration, &str) -> Result<Rewrite, String>,
) -> Result<BumpOutcome, BumpError> {
    let Some(first) = declarations.first() else {
        return Ok(BumpOutcome::NotDeclared);
    };
    let mut edits = Vec::new();
    for declaration in declarations {
        let current = &content[declaration.span.clone()];
        let new = rewrite(declaration, current).map_err(|reason| BumpError::Unsupported {
            manifest: kind.file_name(),
            package: package.to_owned(),
            reason: format!(
                "the constraint `{current}` in {} is not bumped automatically: {reason}",
                declaration.location
            ),
        })?;
        match new {
            Rewrite::Satisfied => {}
            Rewrite::Updated(new) => {
                edits.push((declaration.span.clone(), current.to_owned(), new, false));
            }
            Rewrite::Widened(new) => {
                edits.push((declaration.span.clone(), current.to_owned(), new, true));
            }
        }
    }
    // A widened range is what a reviewer most needs to hear about, so it is the one reported.
    let reported = edits
        .iter()
        .find(|(_, _, _, widened)| *widened)
        .or_else(|| edits.first());
    let Some((_, from, to, widened)) = reported.cloned() else {
        return Ok(BumpOutcome::AlreadySatisfied {
            current: content[first.span.clone()].to_owned(),
        });
    };
    let mut updated = content.to_owned();
    edits.sort_by_key(|(span, _, _, _)| std::cmp::Reverse(span.start));
    for (span, _, new, _) in edits {
        updated.replace_range(span, &new);
    }
    Ok(BumpOutcome::Bumped {
        updated,
        from,
        to,
        widened,
    })
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
        for (path, kind) in [
            ("pyproject.toml", ManifestKind::PyprojectToml),
            (
                "services/worker/pyproject.toml",
                ManifestKind::PyprojectToml,
            ),
            ("go.mod", ManifestKind::GoMod),
            ("tools/go.mod", ManifestKind::GoMod),
            ("pom.xml", ManifestKind::PomXml),
            ("orders-api/pom.xml", ManifestKind::PomXml),
        ] {
            assert_eq!(ManifestKind::detect(path), Some(kind), "{path}");
        }
        for path in [
            "go.sum",
            "go.work",
            "Pyproject.toml",
            "setup.cfg",
            "build.gradle",
            "pom.xml.bak",
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
        let ecosystem_manifests = |name: &str| ecosystem_manifests(&Ecosystem::parse(name));
        assert_eq!(ecosystem_manifests("crates.io"), &[ManifestKind::CargoToml]);
        assert_eq!(ecosystem_manifests("cargo"), &[ManifestKind::CargoToml]);
        assert_eq!(ecosystem_manifests("npm"), &[ManifestKind::PackageJson]);
        for pypi in ["PyPI", "pypi"] {
            assert_eq!(
                ecosystem_manifests(pypi),
                &[ManifestKind::RequirementsTxt, ManifestKind::PyprojectToml]
            );
        }
        assert_eq!(ecosystem_manifests("Go"), &[ManifestKind::GoMod]);
        assert_eq!(ecosystem_manifests("Maven"), &[ManifestKind::PomXml]);
        assert!(ecosystem_manifests("NuGet").is_empty());
        assert!(ecosystem_manifests("RubyGems").is_empty());
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
            (
                ManifestKind::PyprojectToml,
                "[project]\ndependencies = [\"log>=0.4.1\"]\n",
                "\"log>=0.4.20\"",
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
    fn go_and_maven_dispatch_with_their_package_names() {
        let go_mod = "module example.com/app\n\nrequire golang.org/x/net v0.7.0\n";
        // OSV writes Go versions without the `v`; a `v`-prefixed target is accepted too.
        for target in ["0.17.0", "v0.17.0"] {
            assert_eq!(
                bump_manifest(ManifestKind::GoMod, go_mod, "golang.org/x/net", target),
                Ok(BumpOutcome::Bumped {
                    updated: "module example.com/app\n\nrequire golang.org/x/net v0.17.0\n"
                        .to_owned(),
                    from: "v0.7.0".to_owned(),
                    to: "v0.17.0".to_owned(),
                    widened: false,
                }),
                "{target}"
            );
        }
        let pom = "<project><dependencies><dependency><groupId>org.yaml</groupId>\
                   <artifactId>snakeyaml</artifactId><version>1.33</version>\
                   </dependency></dependencies></project>";
        match bump_manifest(ManifestKind::PomXml, pom, "org.yaml:snakeyaml", "2.0") {
            Ok(BumpOutcome::Bumped { updated, .. }) => {
                assert_eq!(updated, pom.replace("1.33", "2.0"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn odd_target_versions_are_refused_before_touching_the_file() {
        for target in [
            "", "latest", "1.2.3\"", "1.2 || 2", "^1.4.0", "1.4.0\n", "v", "vv1.0",
        ] {
            assert_eq!(
                bump_manifest(ManifestKind::CargoToml, "", "serde", target),
                Err(BumpError::InvalidTarget(target.to_owned())),
                "{target:?}"
            );
        }
    }
}
