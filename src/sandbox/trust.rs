//! What the tools inside the sandbox trust: what the machine trusts, plus the private CAs of
//! `sandbox.ca_bundle`.
//!
//! Networks that inspect TLS re-sign it with a CA of their own that the system store holds.
//! npm, git, go and cargo read the system store, but uv ships its own roots, and Poetry and
//! pip-tools read certifi's bundle: without being told, they fail on such a network. So every
//! run gets one bundle (the system's, or the system's followed by `ca_bundle`), mounted
//! read-only at [`INSIDE`], and every setting a tool reads for it names that file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the bundle is inside the sandbox.
pub const INSIDE: &str = "/etc/remediator/ca-bundle.pem";

/// The system stores of the common distributions (Debian/Ubuntu/Alpine, Fedora/RHEL, SUSE,
/// and others), first found wins.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The variables each tool reads for its trust store: OpenSSL and rustls-native-certs (uv,
/// cargo, git, go), requests and pip (Poetry, pip-tools), Node (npm, pnpm, yarn), curl (cargo's
/// and git's HTTP), and cargo's and git's own settings.
const BUNDLE_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CARGO_HTTP_CAINFO",
    "GIT_SSL_CAINFO",
];

/// The bundle every run trusts.
#[derive(Debug, Clone)]
pub struct TrustStore {
    /// The file on the worker: the system's bundle, or a combined one.
    bundle: PathBuf,
    /// The combined file, removed when the last sandbox holding it goes.
    _combined: Option<Arc<tempfile::NamedTempFile>>,
}

fn no_system_bundle() -> String {
    format!(
        "no system CA bundle found (looked for {}); install ca-certificates, or set \
         sandbox.ca_bundle",
        SYSTEM_BUNDLES.join(", ")
    )
}

/// The text of `sandbox.ca_bundle`, which must hold a PEM certificate.
pub fn read_pem(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("sandbox.ca_bundle {}: {e}", path.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "sandbox.ca_bundle {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(text)
}

impl TrustStore {
    /// The system store, followed by `extra` (a PEM file of private CAs) when given, and by
    /// `own` (the PEM of the worker's registry CA, [`super::registry_ca`]) when given.
    pub fn new(extra: Option<&Path>, own: Option<&str>) -> Result<Self, String> {
        let system = SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .find(|path| path.is_file());
        if extra.is_none() && own.is_none() {
            let bundle = system.ok_or_else(no_system_bundle)?;
            return Ok(TrustStore {
                bundle: bundle.to_path_buf(),
                _combined: None,
            });
        }
        let mut text = match system {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
            None if extra.is_none() => return Err(no_system_bundle()),
            None => String::new(),
        };
        for added in extra
            .map(read_pem)
            .transpose()?
            .into_iter()
            .chain(own.map(str::to_owned))
        {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&added);
        }
        let file = tempfile::Builder::new()
            .prefix("remediator-ca-")
            .suffix(".pem")
            .tempfile()
            .map_err(|e| format!("writing the combined CA bundle: {e}"))?;
        std::fs::write(file.path(), text)
            .map_err(|e| format!("writing the combined CA bundle: {e}"))?;
        Ok(TrustStore {
            bundle: file.path().to_path_buf(),
            _combined: Some(Arc::new(file)),
        })
    }

    /// The bundle on the worker, to bind at [`INSIDE`].
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }

    /// The settings that point every tool at the bundle, seen at `path`; uv is also told to
    /// use the platform's store rather than its bundled roots.
    pub fn env(path: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = BUNDLE_VARIABLES
            .iter()
            .map(|key| ((*key).to_owned(), path.to_owned()))
            .collect();
        env.push(("UV_NATIVE_TLS".to_owned(), "true".to_owned()));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn private_cas_follow_the_system_store_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("company.pem");
        std::fs::write(&extra, PEM).unwrap();
        let store = TrustStore::new(Some(&extra), None).unwrap();
        let text = std::fs::read_to_string(store.bundle()).unwrap();
        assert!(text.ends_with(PEM), "the private CA is in the bundle");
        if let Some(system) = SYSTEM_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
            let system = std::fs::read_to_string(system).unwrap();
            assert!(
                text.starts_with(system.trim_end()),
                "the system store comes first"
            );
        }
    }

    #[test]
    fn a_bundle_that_is_no_pem_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("company.pem");
        std::fs::write(&extra, "not a certificate").unwrap();
        let error = TrustStore::new(Some(&extra), None).unwrap_err();
        assert!(error.contains("sandbox.ca_bundle"), "{error}");
        let missing = TrustStore::new(Some(&dir.path().join("none.pem")), None).unwrap_err();
        assert!(missing.contains("none.pem"), "{missing}");
    }

    #[test]
    fn every_tool_setting_names_the_bundle() {
        let env = TrustStore::env(INSIDE);
        for key in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
            assert!(env.contains(&(key.to_owned(), INSIDE.to_owned())), "{key}");
        }
        assert!(env.contains(&("UV_NATIVE_TLS".to_owned(), "true".to_owned())));
    }
}
