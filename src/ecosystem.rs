//! The package ecosystem of a finding, parsed once (at import and when a job loads its
//! target) and passed as this type everywhere after, so a per-ecosystem choice is an exhaustive
//! `match`, not a string compared in five places.
//!
//! The ecosystems Remediator has its own files for (manifest bumps, lock tools, test
//! conventions) are variants; any other name a scanner reports (`Debian:12`, `RubyGems`,
//! Grype's `generic`) is kept as [`Ecosystem::Other`]: the finding is real, the LLM patcher may
//! still fix it, and nothing deterministic pretends to. Spellings are OSV's; SQL and JSON hold
//! that spelling, so the type changes no stored value.

/// A finding's ecosystem; see the module documentation.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Ecosystem {
    Npm,
    PyPi,
    CratesIo,
    Go,
    Maven,
    /// An ecosystem Remediator has no deterministic support for, as the catalog spells it.
    Other(String),
}

/// Why a name is not an ecosystem: it is empty, or spans lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEcosystem(String);

impl Ecosystem {
    /// The ecosystems with deterministic support, in the order messages list them.
    pub const SUPPORTED: [Ecosystem; 5] = [
        Ecosystem::Npm,
        Ecosystem::PyPi,
        Ecosystem::CratesIo,
        Ecosystem::Go,
        Ecosystem::Maven,
    ];

    /// OSV's spelling (`npm`, `PyPI`, `crates.io`, `Go`, `Maven`), or the catalog's for others.
    pub fn as_str(&self) -> &str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::PyPi => "PyPI",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Go => "Go",
            Ecosystem::Maven => "Maven",
            Ecosystem::Other(name) => name,
        }
    }

    /// Reads a stored or reported name: the supported ecosystems case-insensitively and under
    /// the aliases scanners use (`cargo`, `pypi`, `golang`); anything else non-empty is
    /// [`Ecosystem::Other`], trimmed. Total: every stored row reads back.
    pub fn parse(name: &str) -> Self {
        let name = name.trim();
        match name.to_ascii_lowercase().as_str() {
            "npm" => Ecosystem::Npm,
            "pypi" => Ecosystem::PyPi,
            "crates.io" | "cargo" => Ecosystem::CratesIo,
            "go" | "golang" => Ecosystem::Go,
            "maven" => Ecosystem::Maven,
            _ => Ecosystem::Other(name.to_owned()),
        }
    }

    /// [`Ecosystem::parse`] for input a person wrote (an import file): refuses an empty or
    /// multi-line name with a message that names the supported ecosystems.
    pub fn parse_input(name: &str) -> Result<Self, InvalidEcosystem> {
        if name.trim().is_empty() || name.contains(['\n', '\r']) {
            return Err(InvalidEcosystem(format!(
                "an ecosystem is one line, as OSV names it; Remediator fixes {} by itself \
                 (others are kept for the LLM patcher)",
                Self::supported_list()
            )));
        }
        Ok(Self::parse(name))
    }

    /// Whether Remediator has deterministic support (bumps, lock tools) for it.
    pub fn is_supported(&self) -> bool {
        !matches!(self, Ecosystem::Other(_))
    }

    /// `npm, PyPI, crates.io, Go, Maven`, for messages.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(Ecosystem::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl<'de> serde::Deserialize<'de> for Ecosystem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ecosystem::parse_input(&name).map_err(serde::de::Error::custom)
    }
}

// Stored as its spelling; every stored name reads back (`parse` is total).
crate::lifecycle::status::stored_as_text!(Ecosystem, |text: &str| Ok(Ecosystem::parse(text)));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_osv_spells_them() {
        for ecosystem in Ecosystem::SUPPORTED {
            assert_eq!(Ecosystem::parse(ecosystem.as_str()), ecosystem);
        }
        assert_eq!(Ecosystem::parse("PYPI"), Ecosystem::PyPi);
        assert_eq!(Ecosystem::parse(" cargo "), Ecosystem::CratesIo);
        assert_eq!(Ecosystem::parse("golang"), Ecosystem::Go);
        assert_eq!(
            Ecosystem::parse("Debian:12"),
            Ecosystem::Other("Debian:12".to_owned())
        );
        assert_eq!(Ecosystem::parse("Debian:12").as_str(), "Debian:12");
        assert!(!Ecosystem::parse("RubyGems").is_supported());
    }

    #[test]
    fn input_that_is_not_a_name_is_refused_naming_the_supported_ones() {
        let error = Ecosystem::parse_input("  ").unwrap_err().to_string();
        assert!(error.contains("npm, PyPI, crates.io, Go, Maven"), "{error}");
        assert!(Ecosystem::parse_input("npm\nx").is_err());
        let parsed: Ecosystem = serde_json::from_str("\"crates.io\"").unwrap();
        assert_eq!(parsed, Ecosystem::CratesIo);
        assert_eq!(serde_json::to_string(&Ecosystem::PyPi).unwrap(), "\"PyPI\"");
    }
}
